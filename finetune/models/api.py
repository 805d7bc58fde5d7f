"""API tokens: a script's credential for `POST /api/estimates`, stored as a SHA-256 hash (the key is shown once)."""

from django.conf import settings
from django.db import models

__all__ = ["ApiToken"]


class ApiToken(models.Model):
    """`Authorization: Bearer <key>`. A random 256-bit key needs no slow password hash: SHA-256 is enough."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        related_name="api_tokens",
        help_text="The API acts as this user, with this user's permissions.",
    )
    name = models.CharField(max_length=100, help_text="What the token is for, e.g. the script or machine using it.")
    key_prefix = models.CharField(
        max_length=12, editable=False, help_text="The key's first characters, to recognise it."
    )
    key_hash = models.CharField(max_length=64, unique=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = "API token"

    def __str__(self):
        return f"{self.name} ({self.key_prefix}…, {self.user})"
