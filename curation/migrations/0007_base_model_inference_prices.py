"""Inference prices per 1M tokens, for base models and for the models fine-tuned from them.

An empty price means unknown (shown as "unknown", never $0). The reference's prices are seeded for the
known base models; a price already entered (not the old default 0) is kept.
"""
from decimal import Decimal

from django.db import migrations, models

# A frozen copy of the reference values as this migration applies them (curation/services/base_models.py
# holds the live ones): a migration must mean the same thing forever.
INFERENCE_PRICES = {
    "gpt-4o-2024-08-06": ("2.50", "10.00", "3.75", "15.00"),
    "gpt-4o-2024-11-20": ("2.50", "10.00", "3.75", "15.00"),
    "gpt-4o-mini-2024-07-18": ("0.15", "0.60", "0.30", "1.20"),
    "gpt-4.1-2025-04-14": ("2.00", "8.00", "3.00", "12.00"),
    "gpt-4.1-mini-2025-04-14": ("0.40", "1.60", "0.80", "3.20"),
    "gpt-4.1-nano-2025-04-14": ("0.10", "0.40", "0.20", "0.80"),
}
PRICE_FIELDS = ("input_price_per_1m", "output_price_per_1m", "fine_tuned_input_price_per_1m",
                "fine_tuned_output_price_per_1m")


def prices_seed(BaseModel):
    """Fill the inference prices that are still unknown (empty or the old default 0); an entered price is kept."""
    for row in BaseModel.objects.filter(name__in=INFERENCE_PRICES):
        prices = dict(zip(PRICE_FIELDS, (Decimal(p) for p in INFERENCE_PRICES[row.name])))
        fields = [f for f, price in prices.items() if not getattr(row, f)]
        for f in fields:
            setattr(row, f, prices[f])
        if fields:
            row.save(update_fields=fields)


def seed_prices(apps, schema_editor):
    prices_seed(apps.get_model("curation", "BaseModel"))


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
