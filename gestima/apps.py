from django.apps import AppConfig


class GestimaConfig(AppConfig):
    """Project-wide commands (schedule_periodic, demo_data, wait_for_services), roles and cross-app admin glue."""

    name = "gestima"
    verbose_name = "Gestima"

    def ready(self):
        from django.apps import apps

        if apps.is_installed("django.contrib.admin"):
            from gestima.admin_glue import admin_glue_register

            admin_glue_register()
