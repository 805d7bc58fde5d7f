"""Training runs: one remote fine-tuning job each, with its files, events, metrics and checkpoints."""

from django.conf import settings
from django.db import models

from curation.provider_names import ProviderName, is_simulated_provider

__all__ = ["TrainingRun", "RunEvent", "RunMetric", "RunCheckpoint", "UploadedFile"]


class TrainingRun(models.Model):
    """A fine-tuning run. `status` is an open set: the provider's own values (e.g. `paused`) are stored as they come."""

    class Status:
        DRAFT = "draft"
        UPLOADING = "uploading"
        VALIDATING_FILES = "validating_files"
        QUEUED = "queued"
        RUNNING = "running"
        SUCCEEDED = "succeeded"
        FAILED = "failed"
        CANCELLED = "cancelled"
        DRY_RUN_COMPLETE = "dry_run_complete"

        LABELS = {
            "draft": "Draft",
            "uploading": "Uploading",
            "validating_files": "Validating files",
            "queued": "Queued",
            "running": "Running",
            "succeeded": "Succeeded",
            "failed": "Failed",
            "cancelled": "Cancelled",
            "dry_run_complete": "Dry run complete (files written, no API called)",
            "cancel_requested": "Cancel requested",  # Together, until the job has stopped
        }
        TERMINAL = {"succeeded", "failed", "cancelled", "dry_run_complete"}
        # The one order of statuses: a run only moves forward through it (services/run_state.py `run_status_set`).
        # Statuses the provider adds that we do not know (e.g. `paused`) rank with `running`; every
        # terminal status ranks last, so nothing leaves a terminal status without an explicit reopen.
        ORDER = {"draft": 0, "uploading": 1, "validating_files": 2, "queued": 3, "running": 4}
        UNKNOWN_RANK = 4
        TERMINAL_RANK = 9

        @classmethod
        def rank(cls, status: str) -> int:
            if status in cls.TERMINAL:
                return cls.TERMINAL_RANK
            return cls.ORDER.get(status, cls.UNKNOWN_RANK)

        @classmethod
        def moves_forward(cls, old: str, new: str) -> bool:
            """True when `new` may follow `old`: later in the order, or level but not leaving a terminal status."""
            if old == new:
                return True
            if old in cls.TERMINAL:
                return False
            return cls.rank(new) >= cls.rank(old)

    AUTO = "auto"

    dataset_version = models.ForeignKey(
        "curation.DatasetVersion", on_delete=models.PROTECT, related_name="training_runs"
    )
    base_model = models.ForeignKey("curation.BaseModel", on_delete=models.PROTECT, related_name="training_runs")
    provider = models.CharField(max_length=20, default=ProviderName.DRYRUN)
    method = models.CharField(max_length=20, default="supervised")
    # Each a number or "auto" (the provider picks).
    n_epochs = models.CharField(max_length=20, default=AUTO)
    batch_size = models.CharField(max_length=20, default=AUTO)
    learning_rate_multiplier = models.CharField(max_length=20, default=AUTO)
    suffix = models.CharField(max_length=64, blank=True, help_text="At most 64 characters (OpenAI's limit).")
    seed = models.IntegerField(null=True, blank=True)
    metadata = models.JSONField(default=dict, blank=True, help_text="Sent with the job: run id, dataset version hash.")
    provider_options = models.JSONField(
        default=dict,
        blank=True,
        help_text='Settings only one provider has, e.g. Together: {"training_type": "lora"|"full", '
        '"n_checkpoints": 1}.',
    )

    budget_usd = models.DecimalField(max_digits=10, decimal_places=2, null=True, blank=True)
    estimated_cost_usd = models.DecimalField(max_digits=12, decimal_places=4, null=True, blank=True)
    estimated_tokens = models.PositiveBigIntegerField(null=True, blank=True, help_text="Training tokens x epochs.")
    override = models.BooleanField(
        default=False, help_text="Launched although gates failed or the estimate was over budget."
    )
    override_reason = models.TextField(blank=True)
    override_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    status = models.CharField(max_length=30, default=Status.DRAFT, db_index=True)
    timeline = models.JSONField(default=list, blank=True, help_text="[{status, at}] every status the run went through.")

    training_file_id = models.CharField(max_length=100, blank=True)
    validation_file_id = models.CharField(max_length=100, blank=True)
    job_id = models.CharField(max_length=100, null=True, blank=True, unique=True)
    # Set by the one worker that won the right to upload and create the job; see services/run_start.py.
    worker_claimed_at = models.DateTimeField(null=True, blank=True)
    # The claiming worker renews this while it exports, uploads and creates the job; once it has run out the
    # worker is gone and the recovery (gestima.recovery) starts the run again, at most JOB_MAX_ATTEMPTS starts.
    start_lease_until = models.DateTimeField(null=True, blank=True)
    start_attempts = models.PositiveSmallIntegerField(default=0)
    run_dir = models.CharField(max_length=500, blank=True)

    fine_tuned_model = models.CharField(max_length=200, blank=True)
    trained_tokens = models.PositiveBigIntegerField(null=True, blank=True)
    actual_cost_usd = models.DecimalField(max_digits=12, decimal_places=4, null=True, blank=True)
    result_file_id = models.CharField(max_length=100, blank=True)
    result_file_parsed = models.BooleanField(default=False)

    # What the provider resolved "auto" to (from the job's method/hyperparameters) and its finish estimate.
    resolved_hyperparameters = models.JSONField(
        default=dict, blank=True, help_text="The provider's values for n_epochs, batch_size, learning_rate_multiplier."
    )
    estimated_finish_at = models.DateTimeField(
        null=True, blank=True, help_text="The provider's estimate (job.estimated_finish)."
    )
    # Files the provider holds for this run that no job uses (the worker stopped after the upload).
    orphaned_files = models.JSONField(
        default=list, blank=True, help_text='[{"split", "file_id"}] uploaded but not attached to a job.'
    )
    # What the provider dropped or refused, linked to the dataset members of the exported lines.
    provider_refusals = models.JSONField(
        default=list, blank=True, help_text='[{"split", "line", "member_id", "example_id", "reason", "source"}]'
    )

    # Azure serves a fine-tuned model only through a deployment: its name (what chat calls use), its
    # provisioningState (Creating, Succeeded, Failed; "Recorded" for one made in the portal) and why it failed.
    deployment_name = models.CharField(max_length=64, blank=True)
    deployment_state = models.CharField(max_length=30, blank=True)
    deployment_error = models.TextField(blank=True)

    error_code = models.CharField(max_length=100, blank=True)
    error_message = models.TextField(blank=True)
    error_param = models.CharField(max_length=200, blank=True)
    sync_error = models.TextField(
        blank=True, help_text="Last transient problem talking to the provider (the run kept its state)."
    )

    relaunched_from = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="relaunches"
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    launched_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    last_synced_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        permissions = [("launch_run", "Can launch, cancel and relaunch training runs")]

    def __str__(self):
        return f"Run {self.pk} ({self.base_model}, {self.status})"

    @property
    def status_label(self) -> str:
        return self.Status.LABELS.get(self.status, self.status)

    @property
    def is_terminal(self) -> bool:
        return self.status in self.Status.TERMINAL

    @property
    def is_simulated(self) -> bool:
        """Made or answered by the simulated provider (the demo): every screen that shows it says so."""
        return is_simulated_provider(self.provider)

    @property
    def hyperparameters(self) -> dict:
        """Typed values as the API expects them: int/float or "auto"."""

        def typed(value, kind):
            if value in ("", None, self.AUTO):
                return self.AUTO
            return kind(value)

        return {
            "n_epochs": typed(self.n_epochs, int),
            "batch_size": typed(self.batch_size, int),
            "learning_rate_multiplier": typed(self.learning_rate_multiplier, float),
        }

    @property
    def hyperparameter_rows(self) -> list[dict]:
        """What was asked (a number or "auto") beside what the provider chose, for the run page."""
        resolved = self.resolved_hyperparameters or {}
        return [
            {"name": name, "asked": asked, "resolved": resolved.get(name)}
            for name, asked in (
                ("n_epochs", self.n_epochs),
                ("batch_size", self.batch_size),
                ("learning_rate_multiplier", self.learning_rate_multiplier),
            )
        ]


class RunEvent(models.Model):
    """One provider event, stored once (the remote id is unique)."""

    run = models.ForeignKey(TrainingRun, on_delete=models.CASCADE, related_name="events")
    remote_id = models.CharField(max_length=100, unique=True)
    created_at_remote = models.DateTimeField(null=True, blank=True)
    level = models.CharField(max_length=20, blank=True)
    type = models.CharField(max_length=30, blank=True)
    message = models.TextField(blank=True)
    data = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["run_id", "created_at_remote", "id"]

    def __str__(self):
        return f"{self.run_id} {self.level} {self.message[:60]}"


class RunMetric(models.Model):
    """Per-step metrics, merged from metrics events and the result CSV."""

    run = models.ForeignKey(TrainingRun, on_delete=models.CASCADE, related_name="metrics")
    step = models.PositiveIntegerField()
    train_loss = models.FloatField(null=True, blank=True)
    train_accuracy = models.FloatField(null=True, blank=True)
    valid_loss = models.FloatField(null=True, blank=True)
    valid_accuracy = models.FloatField(null=True, blank=True)
    full_valid_loss = models.FloatField(null=True, blank=True)
    full_valid_accuracy = models.FloatField(null=True, blank=True)
    source = models.CharField(max_length=20, default="event", help_text="event or result_file")

    class Meta:
        ordering = ["run_id", "step"]
        constraints = [models.UniqueConstraint(fields=["run", "step"], name="unique_metric_step_per_run")]


class RunCheckpoint(models.Model):
    run = models.ForeignKey(TrainingRun, on_delete=models.CASCADE, related_name="checkpoints")
    remote_id = models.CharField(max_length=100, unique=True)
    step = models.PositiveIntegerField(null=True, blank=True)
    fine_tuned_model_checkpoint = models.CharField(max_length=200, blank=True)
    metrics = models.JSONField(default=dict, blank=True)
    created_at_remote = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["run_id", "step"]


class UploadedFile(models.Model):
    """A dataset file already on a provider: the same version, split and bytes are never uploaded twice."""

    dataset_version = models.ForeignKey(
        "curation.DatasetVersion", on_delete=models.CASCADE, related_name="uploaded_files"
    )
    provider = models.CharField(max_length=20)
    split = models.CharField(max_length=12)
    sha256 = models.CharField(max_length=64)
    bytes = models.PositiveBigIntegerField(default=0)
    remote_id = models.CharField(max_length=100)
    multipart = models.BooleanField(default=False, help_text="Sent through the Uploads API in parts.")
    # Which provider account holds the file: a file id means nothing under another key, organisation or URL.
    # A fingerprint (provider + base URL/endpoint + organisation + a hash of the key), never the key itself.
    account = models.CharField(max_length=64, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["dataset_version", "provider", "account", "split", "sha256"],
                name="unique_uploaded_file_per_account",
            )
        ]

    def __str__(self):
        return f"{self.dataset_version_id} {self.split} → {self.remote_id}"
