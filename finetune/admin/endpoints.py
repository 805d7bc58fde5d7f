"""Admin for OpenAI-compatible model endpoints: Managers add and edit them; the key's variable NAME only."""

from __future__ import annotations

from django.contrib import admin

from finetune.metrics import usd
from finetune.models import ModelEndpoint
from finetune.providers.compatible import endpoint_key_missing


@admin.register(ModelEndpoint)
class ModelEndpointAdmin(admin.ModelAdmin):
    list_display = ["name", "model_name", "base_url", "api_key_env", "key_status", "input_price", "output_price"]
    search_fields = ["name", "model_name", "base_url"]
    readonly_fields = ["key_status", "created_at"]
    fields = [
        "name",
        "base_url",
        "model_name",
        "api_key_env",
        "key_status",
        "input_price_per_1m",
        "output_price_per_1m",
        "notes",
        "created_at",
    ]

    @admin.display(description="key in this process?")
    def key_status(self, obj):
        if obj is None or not obj.api_key_env:
            return "—"
        missing = endpoint_key_missing(obj.api_key_env)
        return f"not set: {missing}" if missing else f"{obj.api_key_env} is set"

    @admin.display(description="input / 1M")
    def input_price(self, obj):
        return usd(obj.input_price_per_1m)

    @admin.display(description="output / 1M")
    def output_price(self, obj):
        return usd(obj.output_price_per_1m)
