"""Examples remember who owns their target and what ground truth they were built from.

Existing rows: an example is a person's when it was decided on (status other than pending, or a reviewer
set) or its target was edited by someone (a target change with a user whose note is not a machine's
"Ground truth ..." note). The basis of a built example is the last target a machine wrote: the first
target in its history, moved on by each machine rebuild.
"""
from django.db import migrations, models

MACHINE_NOTE_PREFIX = "Ground truth"


def backfill(apps, schema_editor):
    Example = apps.get_model("curation", "Example")
    ExampleChange = apps.get_model("curation", "ExampleChange")
    changes = {}
    for change in ExampleChange.objects.filter(field="target").order_by("at", "id").iterator():
        changes.setdefault(change.example_id, []).append(change)
    for example in Example.objects.all().iterator():
        history = changes.get(example.pk, [])
        touched = (example.status != "pending" or example.reviewer_id is not None
                   or any(c.user_id is not None and not c.note.startswith(MACHINE_NOTE_PREFIX) for c in history))
        basis = ""
        if example.source == "built":
            basis = history[0].before if history else example.target
            for change in history:
                if change.note.startswith(MACHINE_NOTE_PREFIX):
                    basis = change.after
        if touched or basis:
            Example.objects.filter(pk=example.pk).update(touched_by_person=touched, ground_truth_basis=basis)


class Migration(migrations.Migration):

    dependencies = [
        ('curation', '0003_seed_base_models'),
    ]

    operations = [
        migrations.AddField(
            model_name='example',
            name='ground_truth_basis',
            field=models.TextField(blank=True, help_text='The target the ground truth implied when the example was built or last reconciled.'),
        ),
        migrations.AddField(
            model_name='example',
            name='ground_truth_target',
            field=models.TextField(blank=True, help_text="The target the changed ground truth implies, waiting for the reviewer's choice; empty when nothing waits."),
        ),
        migrations.AddField(
            model_name='example',
            name='touched_by_person',
            field=models.BooleanField(default=False, help_text='A person decided on or edited this example: machines never rewrite its target.'),
        ),
        migrations.AlterField(
            model_name='examplechange',
            name='field',
            field=models.CharField(help_text='status, target or ground_truth', max_length=20),
        ),
        migrations.RunPython(backfill, migrations.RunPython.noop),
    ]
