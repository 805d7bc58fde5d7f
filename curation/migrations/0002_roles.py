"""Create the Reviewer and Manager groups with their permissions."""
from django.contrib.auth.management import create_permissions
from django.db import migrations

# Frozen copies of the role lists as they were when this migration was written (gestima/roles.py holds the
# live ones, which roles_sync applies): a migration must mean the same thing forever.
REVIEWER_PERMISSIONS = [
    ("curation", "view_drawing"),
    ("curation", "view_drawingpage"),
    ("curation", "view_groundtruth"),
    ("curation", "view_productionrecord"),
    ("curation", "view_task"),
    ("curation", "view_example"),
    ("curation", "change_example"),
    ("curation", "review_example"),
    ("curation", "view_examplechange"),
    # Evaluation (issue 6): experts read results and correct estimates (a correction is a pending example).
    ("finetune", "view_evalrun"),
    ("finetune", "view_evalresult"),
    ("finetune", "view_modelversion"),
    ("finetune", "view_estimate"),
    ("finetune", "correct_estimate"),
]

MANAGER_EXTRA_PERMISSIONS = [
    ("curation", "add_drawing"),
    ("curation", "change_drawing"),
    ("curation", "render_drawing"),
    ("curation", "add_productionrecord"),
    ("curation", "change_productionrecord"),
    ("curation", "change_groundtruth"),
    ("curation", "view_machine"),
    ("curation", "change_machine"),
    ("curation", "add_machine"),
    ("curation", "view_materialalias"),
    ("curation", "change_materialalias"),
    ("curation", "add_materialalias"),
    ("curation", "add_task"),
    ("curation", "change_task"),
    ("curation", "add_example"),
    ("curation", "view_basemodel"),
    ("curation", "change_basemodel"),
    ("curation", "view_dataset"),
    ("curation", "add_dataset"),
    ("curation", "change_dataset"),
    ("curation", "build_dataset"),
    ("curation", "export_dataset"),
    ("curation", "view_datasetversion"),
    ("finetune", "view_trainingrun"),
    ("finetune", "add_trainingrun"),
    ("finetune", "change_trainingrun"),
    ("finetune", "launch_run"),
    # Evaluation (issue 6): start/resume/compare evals, ask estimates, promote (Manager only).
    ("finetune", "add_evalrun"),
    ("finetune", "run_eval"),
    ("finetune", "promote_model"),
    ("finetune", "change_modelversion"),
    ("finetune", "add_estimate"),
]


def create_roles(apps, schema_editor):
    # Permissions are normally created after all migrations (post_migrate); create them now so the
    # groups can be given them on a fresh database.
    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, verbosity=0, apps=apps)
        app_config.models_module = None

    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")

    def permissions(pairs):
        found = []
        for app_label, codename in pairs:
            permission = Permission.objects.filter(content_type__app_label=app_label, codename=codename).first()
            if permission is None:
                raise RuntimeError(f"permission {app_label}.{codename} does not exist")
            found.append(permission)
        return found

    reviewer, _ = Group.objects.get_or_create(name="Reviewer")
    manager, _ = Group.objects.get_or_create(name="Manager")
    reviewer.permissions.set(permissions(REVIEWER_PERMISSIONS))
    manager.permissions.set(permissions(REVIEWER_PERMISSIONS + MANAGER_EXTRA_PERMISSIONS))


def remove_roles(apps, schema_editor):
    apps.get_model("auth", "Group").objects.filter(name__in=["Reviewer", "Manager"]).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
        ("curation", "0001_initial"),
        ("finetune", "0001_initial"),
    ]

    operations = [migrations.RunPython(create_roles, remove_roles)]
