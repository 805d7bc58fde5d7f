from django.apps import AppConfig


class FinetuneConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "finetune"
    verbose_name = "Fine-tuning"
