"""A task's fallback model in the admin: the model that answers estimates when the active one is gone."""

from __future__ import annotations

from django import forms
from django.contrib import admin

from curation.services.base_models import model_lifecycle
from finetune.admin.fragments import serves_until_html
from finetune.models import TaskFallback
from finetune.providers.base import available_providers
from finetune.selectors import lifecycles_attach


class TaskFallbackForm(forms.ModelForm):
    provider = forms.ChoiceField(choices=())

    class Meta:
        model = TaskFallback
        fields = ["task", "model_name", "provider", "prompt_text", "note"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        choices = [(p, p) for p in available_providers() if p != "dryrun"]
        self.fields["provider"].choices = choices or [("openai", "openai")]


@admin.register(TaskFallback)
class TaskFallbackAdmin(admin.ModelAdmin):
    """A task's fallback model: answers estimates when the active model is gone or its provider keeps failing."""

    form = TaskFallbackForm
    list_display = ["task", "model_name", "provider", "serves_until", "updated_by", "updated_at"]
    list_select_related = ["task", "updated_by"]
    readonly_fields = ["serves_until", "updated_by", "updated_at"]

    def get_changelist_instance(self, request):
        changelist = super().get_changelist_instance(request)
        lifecycles_attach(changelist.result_list, model_version=False)  # "serves until" of every row from one read
        return changelist

    @admin.display(description="serves until")
    def serves_until(self, obj):
        if obj is None or not obj.model_name:
            return "—"
        return serves_until_html(getattr(obj, "lifecycle", None) or model_lifecycle(model_name=obj.model_name))

    def save_model(self, request, obj, form, change):
        obj.updated_by = request.user  # who chose it is part of the record
        super().save_model(request, obj, form, change)
