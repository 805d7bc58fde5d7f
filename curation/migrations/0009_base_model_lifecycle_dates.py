"""Seed every OpenAI snapshot that shuts down on 2027-01-14 (gpt-4o-2024-11-20 was missing) with its jobs-end
and shutdown dates, and fill those dates on existing rows where they are still empty (admin edits are kept)."""
import datetime
from decimal import Decimal

from django.db import migrations

# A frozen copy of the reference values as this migration applies them (curation/services/base_models.py
# holds the live ones): a migration must mean the same thing forever.
OPENAI_JOBS_END = datetime.date(2027, 1, 6)
OPENAI_SHUTDOWN = datetime.date(2027, 1, 14)
SEED = [
    {"name": "gpt-4.1-2025-04-14", "training_price_per_1m": Decimal("25.00"), "image_tokens": "tiles",
     "shutdown_date": OPENAI_SHUTDOWN},
    {"name": "gpt-4.1-mini-2025-04-14", "training_price_per_1m": Decimal("5.00"), "image_tokens": "patches",
     "patch_multiplier": 1.62, "shutdown_date": OPENAI_SHUTDOWN},
    {"name": "gpt-4.1-nano-2025-04-14", "training_price_per_1m": Decimal("1.50"), "image_tokens": "patches",
     "patch_multiplier": 2.46},
    {"name": "gpt-4o-2024-08-06", "training_price_per_1m": Decimal("25.00"), "image_tokens": "tiles",
     "shutdown_date": OPENAI_SHUTDOWN},
    {"name": "gpt-4o-2024-11-20", "training_price_per_1m": Decimal("25.00"), "image_tokens": "tiles",
     "shutdown_date": OPENAI_SHUTDOWN},
    {"name": "gpt-4o-mini-2024-07-18", "training_price_per_1m": Decimal("3.00"), "image_tokens": "tiles_mini",
     "supports_vision": False, "shutdown_date": OPENAI_SHUTDOWN},
]
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


def seed_rows():
    """(name, defaults) of every reference base model, OpenAI's then Together's."""
    rows = []
    for spec in SEED:
        defaults = {"provider": "openai", "encoding": "o200k_base", "max_tokens_per_example": 65536,
                    "jobs_end_date": OPENAI_JOBS_END, **spec}
        rows.append((defaults.pop("name"), defaults))
    for spec in TOGETHER_SEED:
        defaults = {**TOGETHER_DEFAULTS, **spec}
        rows.append((defaults.pop("name"), defaults))
    return rows


def dates_seed(BaseModel):
    """Create the reference base models that are missing and fill the jobs-end and shutdown dates still empty."""
    for name, defaults in seed_rows():
        row, created = BaseModel.objects.get_or_create(name=name, defaults=defaults)
        fields = [] if created else [f for f in ("jobs_end_date", "shutdown_date")
                                     if defaults.get(f) and getattr(row, f) is None]
        for f in fields:
            setattr(row, f, defaults[f])
        if fields:
            row.save(update_fields=fields)


def seed_dates(apps, schema_editor):
    BaseModel = apps.get_model("curation", "BaseModel")
    dates_seed(BaseModel)
    prices_seed(BaseModel)


class Migration(migrations.Migration):
    dependencies = [("curation", "0008_together_base_models")]

    operations = [migrations.RunPython(seed_dates, migrations.RunPython.noop)]
