"""Seed every OpenAI snapshot that shuts down on 2027-01-14 (gpt-4o-2024-11-20 was missing) with its jobs-end
and shutdown dates, and fill those dates on existing rows where they are still empty (admin edits are kept)."""
from django.db import migrations


def seed_dates(apps, schema_editor):
    from curation.services.base_models import base_model_dates_seed, base_model_prices_seed

    BaseModel = apps.get_model("curation", "BaseModel")
    base_model_dates_seed(BaseModel)
    base_model_prices_seed(BaseModel)


class Migration(migrations.Migration):
    dependencies = [("curation", "0008_together_base_models")]

    operations = [migrations.RunPython(seed_dates, migrations.RunPython.noop)]
