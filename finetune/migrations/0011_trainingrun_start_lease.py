from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("finetune", "0010_estimate_live_scores"),
    ]

    operations = [
        migrations.AddField(
            model_name="trainingrun",
            name="start_lease_until",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="trainingrun",
            name="start_attempts",
            field=models.PositiveSmallIntegerField(default=0),
        ),
    ]
