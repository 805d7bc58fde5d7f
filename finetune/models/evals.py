"""Evaluations (EvalRun, EvalResult), the model registry (ModelVersion) and estimates for new drawings."""

from django.conf import settings
from django.core.validators import RegexValidator
from django.db import models
from django.db.models import Q

from curation.provider_names import ProviderName, is_simulated_provider
from gestima.work import WorkStatus

__all__ = ["ModelKind", "ModelEndpoint", "EvalRun", "EvalResult", "ModelVersion", "TaskFallback", "Estimate"]


class ModelKind(models.TextChoices):
    BASE = "base", "Base model"
    FINE_TUNED = "fine_tuned", "Fine-tuned model"
    CHECKPOINT = "checkpoint", "Checkpoint"
    # A model that is not fine-tuned, shown the most similar reviewed examples of the dataset version's
    # train split before each question (finetune/services/few_shot.py).
    FEW_SHOT = "few_shot", "Few-shot from reviewed examples"


ENV_NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*$"


class ModelEndpoint(models.Model):
    """Any OpenAI-compatible chat endpoint (vLLM, Ollama, Together serverless, Azure AI) serving one model.

    The key stays in the environment: only the NAME of the variable holding it is stored, and it is read
    when a call is made (finetune/services/endpoints.py).
    """

    name = models.SlugField(max_length=100, unique=True, help_text="How eval runs and the evaluate command name it.")
    # Not URLField: its validator refuses a bare host name such as http://gpu-box:8000/v1.
    base_url = models.CharField(
        max_length=500,
        validators=[RegexValidator(r"^https?://[^\s/]+", "An http:// or https:// URL.")],
        help_text="e.g. http://gpu-box:8000/v1 (vLLM) or http://localhost:11434/v1 (Ollama).",
    )
    model_name = models.CharField(
        max_length=200, help_text="The model name the endpoint serves, as sent in each request."
    )
    api_key_env = models.CharField(
        max_length=100,
        validators=[
            RegexValidator(
                ENV_NAME_PATTERN,
                "The NAME of an environment variable (letters, digits, underscores), never the key itself.",
            )
        ],
        help_text="Name of the environment variable holding the key, e.g. VLLM_API_KEY. The key itself is never "
        "stored.",
    )
    input_price_per_1m = models.DecimalField(
        max_digits=10,
        decimal_places=4,
        null=True,
        blank=True,
        help_text='USD per 1M input tokens; empty: unknown (costs show "unknown").',
    )
    output_price_per_1m = models.DecimalField(
        max_digits=10, decimal_places=4, null=True, blank=True, help_text="USD per 1M output tokens; empty: unknown."
    )
    notes = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return f"{self.name} ({self.model_name})"


class EvalRun(models.Model):
    """One model on one split of one dataset version; results per example, metrics at the end."""

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        DONE = "done", "Done"
        FAILED = "failed", "Failed"

    class PromptKind(models.TextChoices):
        FULL = "full", "Full prompt (base models)"
        COMPACT = "compact", "Compact prompt (fine-tuned models)"

    task = models.ForeignKey("curation.Task", on_delete=models.PROTECT, related_name="eval_runs")
    model_name = models.CharField(max_length=200)
    model_kind = models.CharField(max_length=20, choices=ModelKind.choices, default=ModelKind.BASE)
    provider = models.CharField(max_length=20, default=ProviderName.OPENAI)
    deployment_name = models.CharField(
        max_length=64, blank=True, help_text="Azure: the deployment the calls go to (the model answers only there)."
    )
    dataset_version = models.ForeignKey("curation.DatasetVersion", on_delete=models.PROTECT, related_name="eval_runs")
    split = models.CharField(max_length=12, default="validation")
    training_run = models.ForeignKey(
        "finetune.TrainingRun", null=True, blank=True, on_delete=models.SET_NULL, related_name="eval_runs"
    )
    endpoint = models.ForeignKey(
        ModelEndpoint,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="eval_runs",
        help_text='The OpenAI-compatible endpoint asked (provider "compatible").',
    )
    few_shot = models.JSONField(
        default=dict, blank=True, help_text="Few-shot runs: k, the similarity rule and where the shots come from."
    )
    prompt_kind = models.CharField(max_length=10, choices=PromptKind.choices)
    prompt_text = models.TextField(help_text="The system prompt sent with every example.")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED, db_index=True)
    concurrency = models.PositiveSmallIntegerField(default=8)
    total = models.PositiveIntegerField(default=0)
    done_count = models.PositiveIntegerField(default=0)
    error_count = models.PositiveIntegerField(default=0)
    metrics = models.JSONField(default=dict, blank=True)
    cost_usd = models.DecimalField(
        max_digits=12,
        decimal_places=6,
        null=True,
        blank=True,
        help_text="Empty: unknown (no inference price for the model).",
    )
    input_tokens = models.PositiveBigIntegerField(default=0)
    output_tokens = models.PositiveBigIntegerField(default=0)
    error = models.TextField(blank=True, help_text="Why the run stopped (the examples' own errors are on the results).")
    attempts = models.PositiveSmallIntegerField(default=0, help_text="How many times a worker started the run.")
    rq_job_id = models.CharField(max_length=100, blank=True, help_text="The RQ job of the latest attempt.")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        permissions = [
            ("run_eval", "Can start, resume and compare evaluations"),
            ("promote_model", "Can promote a model to the active one of its task"),
        ]

    def __str__(self):
        return f"Eval {self.pk}: {self.model_name} on {self.dataset_version_id}/{self.split}"

    @property
    def served_name(self) -> str:
        """What chat calls name: the deployment where the provider needs one, else the model."""
        return self.deployment_name or self.model_name

    @property
    def is_simulated(self) -> bool:
        """Made or answered by the simulated provider (the demo): every screen that shows it says so."""
        return is_simulated_provider(self.provider)


class EvalResult(models.Model):
    """One example's answer in one eval run; unique per example so a resumed run never pays twice."""

    class Status(models.TextChoices):
        OK = "ok", "OK"
        ERROR = "error", "Error"

    class ErrorKind(models.TextChoices):
        NONE = "", "—"
        REFUSAL = "refusal", "Refusal"
        INVALID_JSON = "invalid_json", "Invalid JSON"
        SCHEMA_MISMATCH = "schema_mismatch", "Schema mismatch"
        API_ERROR = "api_error", "API error"

    eval_run = models.ForeignKey(EvalRun, on_delete=models.CASCADE, related_name="results")
    member = models.ForeignKey(
        "curation.DatasetMember", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    example = models.ForeignKey("curation.Example", on_delete=models.PROTECT, related_name="+")
    status = models.CharField(max_length=6, choices=Status.choices, default=Status.OK)
    raw_output = models.TextField(blank=True)
    parsed = models.JSONField(null=True, blank=True)
    latency_ms = models.PositiveIntegerField(default=0)
    input_tokens = models.PositiveIntegerField(default=0)
    output_tokens = models.PositiveIntegerField(default=0)
    cost_usd = models.DecimalField(
        max_digits=12,
        decimal_places=6,
        null=True,
        blank=True,
        help_text="Empty: unknown (no inference price for the model).",
    )
    error_kind = models.CharField(max_length=20, choices=ErrorKind.choices, blank=True, default="")
    error_message = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["eval_run_id", "id"]
        constraints = [models.UniqueConstraint(fields=["eval_run", "example"], name="unique_eval_result_per_example")]

    def __str__(self):
        return f"Eval {self.eval_run_id} example {self.example_id}"


class ModelVersion(models.Model):
    """The registry: a promoted model of a task; one per task is active and serves estimates."""

    task = models.ForeignKey("curation.Task", on_delete=models.PROTECT, related_name="model_versions")
    model_name = models.CharField(max_length=200)
    provider = models.CharField(max_length=20, default=ProviderName.OPENAI)
    deployment_name = models.CharField(
        max_length=64, blank=True, help_text="Azure: the deployment estimates call (the model answers only there)."
    )
    kind = models.CharField(max_length=20, choices=ModelKind.choices)
    prompt_text = models.TextField(blank=True, help_text="The system prompt the model was evaluated (and serves) with.")
    training_run = models.ForeignKey(
        "finetune.TrainingRun", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    endpoint = models.ForeignKey(
        ModelEndpoint,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="model_versions",
        help_text='The OpenAI-compatible endpoint that serves it (provider "compatible").',
    )
    few_shot = models.JSONField(
        default=dict,
        blank=True,
        help_text="Few-shot models: k, the similarity rule and the dataset version the shots come from.",
    )
    eval_run = models.ForeignKey(
        EvalRun, null=True, blank=True, on_delete=models.SET_NULL, related_name="model_versions"
    )
    is_active = models.BooleanField(default=False, db_index=True)
    promoted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    promoted_at = models.DateTimeField(auto_now_add=True)
    policy_passed = models.BooleanField(default=True)
    override_reason = models.TextField(blank=True)
    report = models.JSONField(default=dict, blank=True)
    model_card = models.TextField(blank=True)

    class Meta:
        ordering = ["-promoted_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["task"], condition=Q(is_active=True), name="one_active_model_per_task"),
        ]

    def __str__(self):
        return f"{self.task.slug}: {self.model_name}{' (active)' if self.is_active else ''}"

    @property
    def served_name(self) -> str:
        """What chat calls name: the deployment where the provider needs one, else the model."""
        return self.deployment_name or self.model_name

    @property
    def is_simulated(self) -> bool:
        """Made or answered by the simulated provider (the demo): every screen that shows it says so."""
        return is_simulated_provider(self.provider)


class TaskFallback(models.Model):
    """The model that answers a task's estimates when its active model is gone (past its shutdown date) or its
    provider keeps failing. Kept here, beside the registry: curation does not know about models that serve."""

    task = models.OneToOneField("curation.Task", on_delete=models.CASCADE, related_name="fallback_model")
    model_name = models.CharField(
        max_length=200,
        help_text="As the provider names it: a base model, ft:BASE:..., an Azure deployment, a Together model.",
    )
    provider = models.CharField(max_length=20, default=ProviderName.OPENAI)
    prompt_text = models.TextField(
        blank=True,
        help_text="The system prompt sent to it (empty: the task's full prompt "
        "for a base model, its compact prompt for a fine-tuned one).",
    )
    note = models.TextField(blank=True, help_text="Why this model (e.g. the eval run that justified it).")
    updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "task fallback model"

    def __str__(self):
        return f"{self.task.slug}: fallback {self.model_name} ({self.provider})"


class Estimate(models.Model):
    """The active model's answer for a drawing (or the task's fallback's, with the reason), and an expert's
    correction."""

    class AnsweredBy(models.TextChoices):
        ACTIVE = "active", "Active model"
        FALLBACK = "fallback", "Fallback model"

    task = models.ForeignKey("curation.Task", on_delete=models.PROTECT, related_name="estimates")
    drawing = models.ForeignKey("curation.Drawing", on_delete=models.CASCADE, related_name="estimates")
    model_version = models.ForeignKey(
        ModelVersion, null=True, blank=True, on_delete=models.SET_NULL, related_name="estimates"
    )
    model_name = models.CharField(max_length=200)
    provider = models.CharField(
        max_length=20, help_text="Provider tag: openai (base model), openai_ft (fine-tuned), ..."
    )
    answered_by = models.CharField(max_length=10, choices=AnsweredBy.choices, default=AnsweredBy.ACTIVE)
    fallback_reason = models.TextField(
        blank=True, help_text="Why the fallback model answered instead of the active one."
    )
    output = models.JSONField(null=True, blank=True)
    raw_output = models.TextField(blank=True)
    latency_ms = models.PositiveIntegerField(default=0)
    input_tokens = models.PositiveIntegerField(default=0)
    output_tokens = models.PositiveIntegerField(default=0)
    cost_usd = models.DecimalField(
        max_digits=12,
        decimal_places=6,
        null=True,
        blank=True,
        help_text="Empty: unknown (no inference price for the model).",
    )
    error_kind = models.CharField(max_length=20, blank=True)
    error = models.TextField(blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    corrected_target = models.TextField(blank=True)
    corrected_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    corrected_at = models.DateTimeField(null=True, blank=True)
    example = models.ForeignKey(
        "curation.Example",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text="The pending example made from the correction.",
    )
    # A PDF posted to the API is rendered and estimated by a worker: the row exists from the upload on.
    status = models.CharField(max_length=10, choices=WorkStatus.choices, default=WorkStatus.DONE, db_index=True)
    done = models.PositiveSmallIntegerField(default=0, help_text="Steps done: render the PDF, ask the model.")
    total = models.PositiveSmallIntegerField(default=0)
    stage = models.CharField(max_length=100, blank=True)
    lease_until = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    # Live accuracy (finetune/services/estimate_scores.py): the estimate scored against the part's ground truth
    # once the shop's production records arrive; scored again whenever that ground truth changes.
    live_score = models.FloatField(
        null=True, blank=True, help_text="Mean APE over the estimate's numeric values (metrics.example_score)."
    )
    live_errors = models.JSONField(
        default=dict,
        blank=True,
        help_text="{numeric path: [{key, actual, predicted, ape, pe}]} per machine and operation.",
    )
    live_ape_sum = models.FloatField(null=True, blank=True, help_text="Sum of APEs on the task's primary numeric path.")
    live_ape_n = models.PositiveIntegerField(default=0, help_text="Values summed in live_ape_sum.")
    scored_ground_truth_at = models.DateTimeField(
        null=True,
        blank=True,
        db_index=True,
        help_text="computed_at of the ground truth scored against: a newer ground truth makes the score stale.",
    )
    scored_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        permissions = [("correct_estimate", "Can correct estimates (makes a pending example)")]

    def __str__(self):
        return f"Estimate {self.pk} for {self.drawing}"

    @property
    def is_simulated(self) -> bool:
        """Made or answered by the simulated provider (the demo): every screen that shows it says so."""
        return is_simulated_provider(self.provider)
