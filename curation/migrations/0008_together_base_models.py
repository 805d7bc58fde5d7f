"""Together AI's vision base models, and a training price that may be unknown.

Together publishes no per-model training price in its documentation, so `training_price_per_1m` may be
empty (shown as unknown, never as $0). Rows are data the admin edits afterwards; existing rows are left alone.
"""
from django.db import migrations, models


def seed(apps, schema_editor):
    from curation.services.base_models import TOGETHER_DEFAULTS, TOGETHER_SEED

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
