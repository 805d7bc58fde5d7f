"""Seed the base models (prices per 1M training tokens, jobs-end and shutdown dates) from the reference.

Rows are data the admin edits afterwards; rows that already exist are left alone.
"""
from django.db import migrations


def seed(apps, schema_editor):
    from curation.services.base_models import OPENAI_JOBS_END, SEED

    BaseModel = apps.get_model("curation", "BaseModel")
    for spec in SEED:
        defaults = {"provider": "openai", "encoding": "o200k_base", "max_tokens_per_example": 65536,
                    "jobs_end_date": OPENAI_JOBS_END, **spec}
        name = defaults.pop("name")
        BaseModel.objects.get_or_create(name=name, defaults=defaults)


class Migration(migrations.Migration):
    dependencies = [("curation", "0002_roles")]

    operations = [migrations.RunPython(seed, migrations.RunPython.noop)]
