"""Seed the base models (prices per 1M training tokens, jobs-end and shutdown dates) from the reference.

Rows are data the admin edits afterwards; rows that already exist are left alone.
"""
import datetime
from decimal import Decimal

from django.db import migrations

# A frozen copy of the reference base models as this migration seeds them (curation/services/base_models.py holds
# the live list, which later migrations and `base_models_seed` apply): a migration must mean the same thing forever.
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


def seed(apps, schema_editor):
    BaseModel = apps.get_model("curation", "BaseModel")
    for spec in SEED:
        defaults = {"provider": "openai", "encoding": "o200k_base", "max_tokens_per_example": 65536,
                    "jobs_end_date": OPENAI_JOBS_END, **spec}
        name = defaults.pop("name")
        BaseModel.objects.get_or_create(name=name, defaults=defaults)


class Migration(migrations.Migration):
    dependencies = [("curation", "0002_roles")]

    operations = [migrations.RunPython(seed, migrations.RunPython.noop)]
