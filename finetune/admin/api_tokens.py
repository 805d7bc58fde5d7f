"""API tokens in the admin: made here (the key is shown once, in the message), revoked by deleting them."""

from django.contrib import admin, messages

from finetune.models import ApiToken
from finetune.services.api_tokens import api_token_create


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    list_display = ["name", "user", "key_prefix", "created_at", "last_used_at"]
    list_select_related = ["user"]
    search_fields = ["name", "user__username", "key_prefix"]
    fields = ["user", "name", "key_prefix", "created_at", "last_used_at"]
    readonly_fields = ["key_prefix", "created_at", "last_used_at"]
    autocomplete_fields = []

    def has_change_permission(self, request, obj=None):
        return False  # a token is made or deleted, never edited

    def get_fields(self, request, obj=None):
        return ["user", "name"] if obj is None else self.fields

    def save_model(self, request, obj, form, change):
        token, key = api_token_create(user=form.cleaned_data["user"], name=form.cleaned_data["name"])
        obj.pk, obj.key_prefix, obj.key_hash, obj.created_at = (
            token.pk,
            token.key_prefix,
            token.key_hash,
            token.created_at,
        )
        self.message_user(
            request,
            f"API token for {token.user}: {key} — copy it now, it is not shown again. "
            "Send it as the header `Authorization: Bearer <token>`.",
            messages.WARNING,
        )
