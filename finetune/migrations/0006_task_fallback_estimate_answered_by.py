"""A task may name a fallback model (TaskFallback); an estimate records whether the fallback answered and why."""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models

FALLBACK_PERMISSIONS = {"Reviewer": ["view_taskfallback"],
                        "Manager": ["view_taskfallback", "add_taskfallback", "change_taskfallback", "delete_taskfallback"]}


def grant_fallback_permissions(apps, schema_editor):
    # As 0002_roles does: permissions are made after all migrations, so make them now for the groups.
    from django.contrib.auth.management import create_permissions

    app_config = apps.get_app_config("finetune")
    app_config.models_module = True
    create_permissions(app_config, verbosity=0, apps=apps)
    app_config.models_module = None
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    for name, codenames in FALLBACK_PERMISSIONS.items():
        group = Group.objects.filter(name=name).first()
        if group is not None:
            group.permissions.add(*Permission.objects.filter(content_type__app_label="finetune", codename__in=codenames))


class Migration(migrations.Migration):

    dependencies = [
        ('curation', '0002_roles'),  # the Task table and the groups the permissions go to
        ('contenttypes', '0002_remove_content_type_name'),
        ('finetune', '0005_api_token'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AddField(
            model_name='estimate',
            name='answered_by',
            field=models.CharField(choices=[('active', 'Active model'), ('fallback', 'Fallback model')], default='active', max_length=10),
        ),
        migrations.AddField(
            model_name='estimate',
            name='fallback_reason',
            field=models.TextField(blank=True, help_text='Why the fallback model answered instead of the active one.'),
        ),
        migrations.CreateModel(
            name='TaskFallback',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('model_name', models.CharField(help_text='As the provider names it: a base model, ft:BASE:..., an Azure deployment, a Together model.', max_length=200)),
                ('provider', models.CharField(default='openai', max_length=20)),
                ('prompt_text', models.TextField(blank=True, help_text="The system prompt sent to it (empty: the task's full prompt for a base model, its compact prompt for a fine-tuned one).")),
                ('note', models.TextField(blank=True, help_text='Why this model (e.g. the eval run that justified it).')),
                ('updated_at', models.DateTimeField(auto_now=True)),
                ('task', models.OneToOneField(on_delete=django.db.models.deletion.CASCADE, related_name='fallback_model', to='curation.task')),
                ('updated_by', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to=settings.AUTH_USER_MODEL)),
            ],
            options={
                'verbose_name': 'task fallback model',
            },
        ),
        migrations.RunPython(grant_fallback_permissions, migrations.RunPython.noop),
    ]
