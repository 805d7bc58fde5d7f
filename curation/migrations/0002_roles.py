"""Create the Reviewer and Manager groups with their permissions."""
from django.contrib.auth.management import create_permissions
from django.db import migrations


def create_roles(apps, schema_editor):
    # Permissions are normally created after all migrations (post_migrate); create them now so the
    # groups can be given them on a fresh database.
    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, verbosity=0, apps=apps)
        app_config.models_module = None

    from curation.services.roles import MANAGER_EXTRA_PERMISSIONS, REVIEWER_PERMISSIONS

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
