"""The create form of a training run: a draft's dataset version, base model (with its price and dates),
provider and hyperparameters, checked before the service sees them.
"""

from __future__ import annotations

from django import forms

from curation.models import BaseModel
from curation.services.base_models import base_model_date_warning
from finetune.models import TrainingRun
from finetune.providers.base import configured_providers, default_provider_name
from finetune.services.hyperparameters import HYPERPARAMETER_LIMITS, HyperparameterInvalid, hyperparameter_check


def base_model_label(model: BaseModel) -> str:
    """What a base-model choice shows: price, jobs-end and shutdown dates, and a warning when near or past."""
    price = model.training_price_per_1m
    parts = [model.name, f"${price}/1M training tokens" if price is not None else "training price unknown"]
    if model.jobs_end_date:
        parts.append(f"no new jobs after {model.jobs_end_date:%Y-%m-%d}")
    if model.shutdown_date:
        parts.append(f"shutdown {model.shutdown_date:%Y-%m-%d}")
    label = " · ".join(parts)
    return f"⚠ {label}" if base_model_date_warning(model) else label


class BaseModelChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, obj):
        return base_model_label(obj)


class TrainingRunForm(forms.ModelForm):
    base_model = BaseModelChoiceField(
        queryset=BaseModel.objects.filter(active=True),
        help_text="⚠ marks a model whose jobs-end or shutdown date is near or past.",
    )
    provider = forms.ChoiceField(choices=())
    training_type = forms.ChoiceField(
        choices=[("lora", "LoRA"), ("full", "Full")],
        initial="lora",
        required=False,
        help_text="Together only: LoRA adapters (the default) or full fine-tuning.",
    )

    class Meta:
        model = TrainingRun
        fields = [
            "dataset_version",
            "base_model",
            "provider",
            "n_epochs",
            "batch_size",
            "learning_rate_multiplier",
            "suffix",
            "seed",
            "budget_usd",
        ]
        help_texts = {
            "n_epochs": "1-50 or auto",
            "batch_size": "1-256 or auto",
            "learning_rate_multiplier": "> 0 or auto",
            "budget_usd": "Launch is refused above this estimate unless overridden with a reason.",
        }

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if "provider" in self.fields:  # absent on the read-only run page
            # Only providers whose settings are present (Together needs TOGETHER_API_KEY).
            self.fields["provider"].choices = [(name, name) for name in configured_providers()]
            self.fields["provider"].initial = default_provider_name()

    def clean(self):
        data = super().clean()
        try:
            for name in HYPERPARAMETER_LIMITS:
                data[name] = hyperparameter_check(name=name, value=data.get(name))
        except HyperparameterInvalid as exc:
            raise forms.ValidationError(str(exc))
        return data
