"""Training runs: one remote fine-tuning job each, with its files, events, metrics and checkpoints."""
from django.conf import settings
from django.db import models

__all__ = ["TrainingRun"]


class TrainingRun(models.Model):
    dataset_version = models.ForeignKey("curation.DatasetVersion", on_delete=models.PROTECT, related_name="training_runs")
    base_model = models.ForeignKey("curation.BaseModel", on_delete=models.PROTECT, related_name="training_runs")
    provider = models.CharField(max_length=20, default="dryrun")
    status = models.CharField(max_length=30, default="draft", db_index=True)
    job_id = models.CharField(max_length=100, null=True, blank=True, unique=True)
    fine_tuned_model = models.CharField(max_length=200, blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        permissions = [("launch_run", "Can launch, cancel and relaunch training runs")]

    def __str__(self):
        return f"Run {self.pk} ({self.base_model}, {self.status})"
