from django.apps import AppConfig


class GestimaConfig(AppConfig):
    """Project-wide commands (schedule_periodic, demo_data, wait_for_services)."""

    name = "gestima"
    verbose_name = "Gestima"
