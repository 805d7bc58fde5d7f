"""Together AI's vision base models, and a training price that may be unknown.

Together publishes no per-model training price in its documentation, so `training_price_per_1m` may be
empty (shown as unknown, never as $0). Rows are data the admin edits afterwards; existing rows are left alone.
"""
from django.db import migrations, models

# A frozen copy of the reference values as this migration applies them (curation/services/base_models.py
# holds the live ones): a migration must mean the same thing forever.
TOGETHER_SEED = [
    {"name": "Qwen/Qwen3-VL-8B-Instruct"},
    {"name": "Qwen/Qwen3-VL-30B-A3B-Instruct"},
    {"name": "google/gemma-3-4b-it-VLM"},
    {"name": "google/gemma-3-12b-it-VLM"},
    {"name": "google/gemma-3-27b-it-VLM"},
    {"name": "meta-llama/Llama-4-Scout-17B-16E-Instruct-VLM"},
]
TOGETHER_DEFAULTS = {"provider": "together", "training_price_per_1m": None, "encoding": "o200k_base",
                     "image_tokens": "patches", "patch_multiplier": 1.0, "supports_vision": True,
                     "max_tokens_per_example": 32768}


def seed(apps, schema_editor):
    BaseModel = apps.get_model("curation", "BaseModel")
    for spec in TOGETHER_SEED:
        defaults = {**TOGETHER_DEFAULTS, **spec}
        name = defaults.pop("name")
        BaseModel.objects.get_or_create(name=name, defaults=defaults)


class Migration(migrations.Migration):
    dependencies = [("curation", "0007_base_model_inference_prices")]

    operations = [
        migrations.AlterField(
            model_name="basemodel",
            name="training_price_per_1m",
            field=models.DecimalField(
                blank=True, decimal_places=4, max_digits=10, null=True,
                help_text="USD per 1M training tokens; empty when the provider publishes none (costs then show as unknown).",
            ),
        ),
        migrations.RunPython(seed, migrations.RunPython.noop),
    ]
