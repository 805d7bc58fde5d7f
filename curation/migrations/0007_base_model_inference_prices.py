"""Inference prices per 1M tokens, for base models and for the models fine-tuned from them.

An empty price means unknown (shown as "unknown", never $0). The reference's prices are seeded for the
known base models; a price already entered (not the old default 0) is kept.
"""
from django.db import migrations, models


def seed_prices(apps, schema_editor):
    from curation.services.base_models import base_model_prices_seed

    base_model_prices_seed(apps.get_model("curation", "BaseModel"))


def zero_unknown_prices(apps, schema_editor):
    BaseModel = apps.get_model("curation", "BaseModel")
    BaseModel.objects.filter(input_price_per_1m__isnull=True).update(input_price_per_1m=0)
    BaseModel.objects.filter(output_price_per_1m__isnull=True).update(output_price_per_1m=0)


class Migration(migrations.Migration):
    dependencies = [("curation", "0006_drawing_page_problems")]

    operations = [
        migrations.AlterField(
            model_name="basemodel", name="input_price_per_1m",
            field=models.DecimalField(blank=True, decimal_places=4, help_text="USD per 1M input tokens (empty: unknown)",
                                      max_digits=10, null=True)),
        migrations.AlterField(
            model_name="basemodel", name="output_price_per_1m",
            field=models.DecimalField(blank=True, decimal_places=4, help_text="USD per 1M output tokens (empty: unknown)",
                                      max_digits=10, null=True)),
        migrations.AddField(
            model_name="basemodel", name="fine_tuned_input_price_per_1m",
            field=models.DecimalField(blank=True, decimal_places=4, max_digits=10, null=True,
                                      help_text="USD per 1M input tokens for models fine-tuned from this one (empty: unknown)")),
        migrations.AddField(
            model_name="basemodel", name="fine_tuned_output_price_per_1m",
            field=models.DecimalField(blank=True, decimal_places=4, max_digits=10, null=True,
                                      help_text="USD per 1M output tokens for models fine-tuned from this one (empty: unknown)")),
        migrations.RunPython(seed_prices, zero_unknown_prices),
    ]
