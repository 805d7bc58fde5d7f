"""The data side: drawings and their page images, production records, tasks, examples, datasets."""

from django.conf import settings
from django.db import models
from curation.openai_format import MAX_IMAGES_PER_EXAMPLE
from curation.provider_names import ProviderName
from gestima.work import ACTIVE, WorkStatus


class Drawing(models.Model):
    class Status(models.TextChoices):
        UPLOADED = "uploaded", "Uploaded"
        RENDERING = "rendering", "Rendering"
        RENDERED = "rendered", "Rendered"
        FAILED = "failed", "Failed"

    file = models.FileField(upload_to="drawings/%Y/%m/")
    original_name = models.CharField(max_length=255)
    sha256 = models.CharField(max_length=64, unique=True)
    size_bytes = models.PositiveBigIntegerField(default=0)
    part_number = models.CharField(max_length=100, blank=True, db_index=True)
    material = models.CharField(
        max_length=100, blank=True, help_text="As printed in the title block (read at render; empty for scans)."
    )
    page_count = models.PositiveIntegerField(
        null=True, blank=True, help_text="Pages kept as images; while rendering, the pages in the PDF."
    )
    pages_done = models.PositiveIntegerField(default=0, help_text="While rendering: pages of the PDF rendered so far.")
    has_text_layer = models.BooleanField(null=True, help_text="True: vector drawing; False: scan.")
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.UPLOADED, db_index=True)
    error = models.TextField(blank=True)
    lease_until = models.DateTimeField(
        null=True, blank=True, help_text="While rendering: renewed by the job; once past, its worker is presumed dead."
    )
    render_attempts = models.PositiveSmallIntegerField(
        default=0, help_text="Renders started since the last upload or Render again (a killed worker's count too)."
    )
    repaired = models.BooleanField(default=False, help_text="MuPDF had to repair the file to read it.")
    warning_count = models.PositiveIntegerField(default=0)
    warnings = models.TextField(blank=True)
    page_problems = models.TextField(
        blank=True,
        help_text="Pages left out (too small to hold a drawing) or kept but flagged (blank), with the reason.",
    )
    uploaded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    rendered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        permissions = [("render_drawing", "Can render drawings again")]
        # Rendered scans (scans_waiting_for_material, on the example list): read without visiting the drawings
        # that have a text layer, usually nearly all of them.
        indexes = [
            models.Index(
                fields=["status", "part_number"], condition=models.Q(has_text_layer=False), name="drawing_scans"
            )
        ]

    def __str__(self):
        return self.part_number or self.original_name

    @property
    def is_scan(self):
        return self.has_text_layer is False


class DrawingPage(models.Model):
    drawing = models.ForeignKey(Drawing, on_delete=models.CASCADE, related_name="pages")
    number = models.PositiveIntegerField(help_text="1-based page number.")
    image = models.FileField(upload_to="pages/%Y/%m/")
    width = models.PositiveIntegerField()
    height = models.PositiveIntegerField()
    format = models.CharField(max_length=10, help_text="png or jpeg")
    bytes = models.PositiveIntegerField()
    sha256 = models.CharField(max_length=64)
    phash = models.CharField(max_length=16, blank=True, db_index=True, help_text="64-bit perceptual hash, hex.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["drawing_id", "number"]
        constraints = [models.UniqueConstraint(fields=["drawing", "number"], name="unique_page_per_drawing")]

    def __str__(self):
        return f"{self.drawing} p.{self.number}"


class Machine(models.Model):
    """Reference table: a machine as production records and targets name it."""

    name = models.CharField(max_length=100, unique=True)
    spindles = models.PositiveSmallIntegerField(default=1)
    kind = models.CharField(max_length=50, blank=True, help_text="lathe, mill, saw, ...")
    aliases = models.JSONField(default=list, blank=True, help_text="Other spellings seen in records.")

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.name


class MaterialAlias(models.Model):
    """Reference table: material as written on a drawing -> normalised material."""

    written = models.CharField(max_length=100, unique=True)
    norm = models.CharField(max_length=100, db_index=True)

    class Meta:
        ordering = ["norm", "written"]
        verbose_name_plural = "material aliases"

    def __str__(self):
        return f"{self.written} → {self.norm}"


class ProductionRecord(models.Model):
    # The operations a record may name, in the order the shop runs them: ground truth and targets list them so.
    OPERATIONS = ("saw", "turning", "milling", "deburring")

    part_number = models.CharField(max_length=100, db_index=True)
    order_id = models.CharField(max_length=50)
    machine = models.CharField(max_length=100)
    operation = models.CharField(max_length=50)
    pieces = models.PositiveIntegerField()
    machine_time_min_per_piece = models.DecimalField(max_digits=10, decimal_places=3)
    setup_min = models.DecimalField(max_digits=10, decimal_places=3)
    recorded_at = models.DateField(null=True, blank=True)
    source_name = models.CharField(max_length=255, blank=True)
    imported_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["part_number", "recorded_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["part_number", "order_id", "machine", "operation"], name="production_record_natural_key"
            )
        ]

    def __str__(self):
        return f"{self.part_number} {self.order_id} {self.machine} {self.operation}"


class GroundTruth(models.Model):
    """Trimmed-mean machine and setup times per part, recomputed when records change."""

    class MaterialSource(models.TextChoices):
        NONE = "", "Unknown"
        DRAWING = "drawing", "Read from the drawing's title block"
        MANUAL = "manual", "Entered by hand"

    part_number = models.CharField(max_length=100, unique=True)
    material = models.CharField(max_length=100, blank=True, help_text="As printed in the title block.")
    material_source = models.CharField(max_length=10, choices=MaterialSource.choices, default="", blank=True)
    operations = models.JSONField(
        default=list, help_text="[{machine, operation, machine_time_min_per_piece, setup_min, n, cv}]"
    )
    record_count = models.PositiveIntegerField(default=0)
    max_cv = models.FloatField(null=True, blank=True)
    high_cv = models.BooleanField(default=False, db_index=True)
    computed_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["part_number"]
        verbose_name_plural = "ground truth"
        # The parts still waiting for a material (scans_waiting_for_material, on the example list): a few rows.
        indexes = [
            models.Index(fields=["part_number"], condition=models.Q(material=""), name="groundtruth_no_material")
        ]

    def __str__(self):
        return self.part_number


class BaseModel(models.Model):
    """A model one can fine-tune or evaluate: price, token rules and shutdown dates, editable as data."""

    class ImageTokens(models.TextChoices):
        TILES = "tiles", "512-px tiles (85 + 170 per tile)"
        TILES_MINI = "tiles_mini", "512-px tiles, gpt-4o-mini (2833 + 5667 per tile)"
        PATCHES = "patches", "32-px patches"
        NONE = "none", "No images"

    name = models.CharField(max_length=100, unique=True)
    provider = models.CharField(max_length=20, default=ProviderName.OPENAI)
    training_price_per_1m = models.DecimalField(
        max_digits=10,
        decimal_places=4,
        null=True,
        blank=True,
        help_text="USD per 1M training tokens; empty when the provider publishes none (costs then show as unknown).",
    )
    # Inference prices (USD per 1M tokens); empty means unknown, which every page shows as "unknown", never $0.
    input_price_per_1m = models.DecimalField(
        max_digits=10, decimal_places=4, null=True, blank=True, help_text="USD per 1M input tokens (empty: unknown)"
    )
    output_price_per_1m = models.DecimalField(
        max_digits=10, decimal_places=4, null=True, blank=True, help_text="USD per 1M output tokens (empty: unknown)"
    )
    fine_tuned_input_price_per_1m = models.DecimalField(
        max_digits=10,
        decimal_places=4,
        null=True,
        blank=True,
        help_text="USD per 1M input tokens for models fine-tuned from this one (empty: unknown)",
    )
    fine_tuned_output_price_per_1m = models.DecimalField(
        max_digits=10,
        decimal_places=4,
        null=True,
        blank=True,
        help_text="USD per 1M output tokens for models fine-tuned from this one (empty: unknown)",
    )
    encoding = models.CharField(max_length=30, default="o200k_base")
    image_tokens = models.CharField(max_length=20, choices=ImageTokens.choices, default=ImageTokens.TILES)
    patch_multiplier = models.FloatField(default=1.0)
    supports_vision = models.BooleanField(default=True)
    max_tokens_per_example = models.PositiveIntegerField(default=65536)
    jobs_end_date = models.DateField(null=True, blank=True, help_text="No new fine-tuning jobs after this date.")
    shutdown_date = models.DateField(null=True, blank=True, help_text="The model stops serving on this date.")
    active = models.BooleanField(default=True)

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.name


class Task(models.Model):
    """One thing we train: its output contract, prompts, image settings and metrics."""

    class Detail(models.TextChoices):
        LOW = "low", "low"
        HIGH = "high", "high"
        AUTO = "auto", "auto"

    slug = models.SlugField(max_length=50, unique=True)
    name = models.CharField(max_length=100)
    description = models.TextField(blank=True)
    output_schema = models.JSONField(default=dict, help_text="JSON Schema every target must satisfy.")
    schema_version = models.PositiveIntegerField(default=1)
    system_prompt = models.TextField(help_text="Full prompt, for base models.")
    compact_prompt = models.TextField(blank=True, help_text="Short prompt, for fine-tuned models.")
    user_prompt_template = models.TextField(
        blank=True, help_text="Python format string; fields such as {part_number} come from the example."
    )
    prompt_version = models.PositiveIntegerField(default=1)
    uses_images = models.BooleanField(default=True)
    image_detail = models.CharField(max_length=10, choices=Detail.choices, default=Detail.HIGH)
    max_images = models.PositiveSmallIntegerField(
        default=4, help_text=f"At most {MAX_IMAGES_PER_EXAMPLE} (OpenAI's limit)."
    )
    metric_spec = models.JSONField(
        default=dict,
        blank=True,
        help_text='{"numeric": ["operations[].machine_time_min_per_piece", ...], "categorical": ["material", ...]}',
    )
    promotion_policy = models.JSONField(
        default=dict, blank=True, help_text='{"max_mape": 0.15, "min_json_validity": 0.98, ...}'
    )
    demo = models.BooleanField(
        default=False, help_text="Made by the demo loader: only a demo task may promote or ask a simulated model."
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["slug"]

    def __str__(self):
        return self.name


class Example(models.Model):
    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        APPROVED = "approved", "Approved"
        REJECTED = "rejected", "Rejected"
        NEEDS_CHANGES = "needs_changes", "Needs changes"

    class Source(models.TextChoices):
        BUILT = "built", "Built from drawing + ground truth"
        IMPORTED = "imported", "Imported JSONL"
        CORRECTION = "correction", "Expert correction of an estimate"
        MANUAL = "manual", "Manual"

    task = models.ForeignKey(Task, on_delete=models.PROTECT, related_name="examples")
    drawing = models.ForeignKey(Drawing, null=True, blank=True, on_delete=models.SET_NULL, related_name="examples")
    # Chat messages before the target (system, user, earlier turns). Page images are referenced as
    # {"type": "image_url", "image_url": {"url": "page:<DrawingPage id>", "detail": ...}} and embedded at export.
    messages = models.JSONField(default=list)
    target = models.TextField(help_text="The assistant's answer: JSON text valid against the task schema.")
    schema_version = models.PositiveIntegerField(default=1)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.PENDING, db_index=True)
    reviewer = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    reviewed_at = models.DateTimeField(null=True, blank=True)
    rejection_reason = models.TextField(blank=True)
    review_note = models.TextField(blank=True, help_text="Why the example is where it is (e.g. ground truth changed).")
    quality_score = models.FloatField(null=True, blank=True)
    confidence = models.FloatField(null=True, blank=True)
    source = models.CharField(max_length=20, choices=Source.choices, default=Source.BUILT)
    tags = models.JSONField(default=dict, blank=True, help_text='{"industry": "...", "machine": [...], ...}')
    group_key = models.CharField(
        max_length=100, blank=True, db_index=True, help_text="Part number: one split per group."
    )
    content_hash = models.CharField(max_length=64, db_index=True)
    near_duplicate_of = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="near_duplicates"
    )
    is_near_duplicate = models.BooleanField(default=False, db_index=True)
    # Experts' work is never lost: once a person decided on or edited an example, no machine path rewrites
    # its target. A ground-truth change is then measured against `ground_truth_basis` (what the ground truth
    # implied when the example was built), never against the reviewer's target, and the new ground truth
    # waits in `ground_truth_target` for the reviewer's choice (keep theirs or take it).
    touched_by_person = models.BooleanField(
        default=False, help_text="A person decided on or edited this example: machines never rewrite its target."
    )
    ground_truth_basis = models.TextField(
        blank=True, help_text="The target the ground truth implied when the example was built or last reconciled."
    )
    ground_truth_target = models.TextField(
        blank=True,
        help_text="The target the changed ground truth implies, waiting for the reviewer's choice; "
        "empty when nothing waits.",
    )
    # A fine-tuning provider dropped or refused this example (e.g. an image failed its content checks):
    # dataset builds leave it out until someone clears the flag. Set through examples_flag_provider_refused.
    provider_refused = models.BooleanField(default=False, db_index=True)
    provider_refused_reason = models.TextField(blank=True)
    provider_refused_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["id"]
        constraints = [models.UniqueConstraint(fields=["task", "content_hash"], name="unique_example_content_per_task")]
        # Each serves a read that would otherwise visit every example's row (wide: chat and target JSON), so
        # its cost stayed flat from 100 to 100,000 examples (benchmarks/admin.py):
        indexes = [
            # the dashboard's oldest pending example: one step down the index
            models.Index(fields=["status", "created_at"], name="example_status_created"),
            # the changelist filtered by status and confidence, counted for its paginator: a fifth of a status's
            # rows instead of all of them (the JSON tag and search terms are then read on those alone)
            models.Index(fields=["status", "confidence"], name="example_status_confidence"),
            # the newest change, part of the fingerprint that keeps the tag filters' values cached
            models.Index(fields=["updated_at"], name="example_updated"),
            # examples whose ground truth changed: a handful, counted on the dashboard and filtered in the list
            models.Index(
                fields=["id"], condition=~models.Q(ground_truth_target=""), name="example_ground_truth_changed"
            ),
        ]
        permissions = [("review_example", "Can review examples (approve, reject, edit target)")]

    def __str__(self):
        return f"{self.task.slug} #{self.pk} {self.group_key}"


class ExampleChange(models.Model):
    """Audit trail: every status or target change of an example."""

    example = models.ForeignKey(Example, on_delete=models.CASCADE, related_name="changes")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    at = models.DateTimeField(auto_now_add=True, db_index=True)
    field = models.CharField(max_length=20, help_text="status, target or ground_truth")
    before = models.TextField(blank=True)
    after = models.TextField(blank=True)
    note = models.TextField(blank=True)

    class Meta:
        ordering = ["-at", "-id"]
        indexes = [
            # The dashboard's review decisions per day and reviewer, read from the index alone (status changes
            # only: a target change's `after` is a whole target and stays out of it).
            models.Index(
                fields=["at", "user", "after", "field"], condition=models.Q(field="status"), name="examplechange_status"
            ),
        ]

    def __str__(self):
        return f"{self.example_id} {self.field} {self.at:%Y-%m-%d %H:%M}"


class Dataset(models.Model):
    """A dataset definition: which examples, how to split, and the policy a version must pass."""

    name = models.CharField(max_length=100, unique=True)
    task = models.ForeignKey(Task, on_delete=models.PROTECT, related_name="datasets")
    statuses = models.JSONField(
        default=list, blank=True, help_text='Example statuses to include; default ["approved"].'
    )
    min_quality = models.FloatField(null=True, blank=True)
    min_confidence = models.FloatField(null=True, blank=True)
    tag_filters = models.JSONField(default=dict, blank=True, help_text='{"industry": ["automotive"]}')
    validation_fraction = models.FloatField(default=0.1)
    split_seed = models.PositiveIntegerField(default=42)
    split_group = models.CharField(
        max_length=50, default="group_key", help_text="group_key (part number) or a tag name"
    )
    min_rows = models.PositiveIntegerField(default=10, help_text="Never below OpenAI's 10.")
    min_groups = models.PositiveIntegerField(default=2)
    max_tag_share = models.JSONField(default=dict, blank=True, help_text='{"industry": 0.8}')
    max_duplicate_target_share = models.FloatField(default=0.2)
    max_same_prefix_share = models.FloatField(default=0.5)
    prefix_chars = models.PositiveIntegerField(default=40)
    epochs = models.PositiveSmallIntegerField(default=3, help_text="Epochs used for the cost estimate.")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        permissions = [
            ("build_dataset", "Can build dataset versions"),
            ("export_dataset", "Can export dataset versions"),
        ]

    def __str__(self):
        return self.name


class DatasetVersion(models.Model):
    """A frozen build of a dataset: members, split, tokens, cost and gate results never change."""

    class ExportStatus(models.TextChoices):
        NONE = "none", "Not exported"
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        DONE = "done", "Done"
        FAILED = "failed", "Failed"

    dataset = models.ForeignKey(Dataset, on_delete=models.PROTECT, related_name="versions")
    number = models.PositiveIntegerField()
    content_hash = models.CharField(max_length=64, db_index=True)
    prompt_version = models.PositiveIntegerField(default=1)
    schema_version = models.PositiveIntegerField(default=1)
    counts = models.JSONField(default=dict, help_text='{"train": n, "validation": n, "groups": n}')
    tag_counts = models.JSONField(default=dict)
    tokens = models.JSONField(default=dict, help_text="Totals per split: text, image, total.")
    cost_estimates = models.JSONField(default=dict, help_text="{base model: USD} for the dataset's epochs.")
    gates = models.JSONField(default=list, help_text="[{name, passed, value, threshold, message}]")
    problems = models.JSONField(default=list, help_text="[{example_id, line, split, code, message}]")
    gates_passed = models.BooleanField(default=False)
    export_status = models.CharField(max_length=10, choices=ExportStatus.choices, default=ExportStatus.NONE)
    export_progress = models.PositiveIntegerField(default=0, help_text="Lines written so far.")
    export_dir = models.CharField(max_length=500, blank=True)
    export_error = models.TextField(blank=True)
    export_format = models.CharField(max_length=20, blank=True, help_text="Format of the export requested last.")
    export_lease_until = models.DateTimeField(
        null=True, blank=True, help_text="While running: renewed by the job; once past, its worker is presumed dead."
    )
    export_attempts = models.PositiveSmallIntegerField(default=0, help_text="Runs started since the last request.")
    exported_at = models.DateTimeField(null=True, blank=True)
    manifest = models.JSONField(default=dict, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["dataset_id", "-number"]
        constraints = [models.UniqueConstraint(fields=["dataset", "number"], name="unique_version_number")]

    def __str__(self):
        return f"{self.dataset.name} v{self.number}"


class DatasetMember(models.Model):
    """One example frozen into a version: its split and a snapshot of what was trained on."""

    class Split(models.TextChoices):
        TRAIN = "train", "Train"
        VALIDATION = "validation", "Validation"

    version = models.ForeignKey(DatasetVersion, on_delete=models.CASCADE, related_name="members")
    example = models.ForeignKey(Example, on_delete=models.PROTECT, related_name="memberships")
    split = models.CharField(max_length=12, choices=Split.choices, db_index=True)
    position = models.PositiveIntegerField()
    messages = models.JSONField(help_text="Snapshot of the example's messages (image refs carry page sha256).")
    target = models.TextField()
    text_tokens = models.PositiveIntegerField(default=0)
    image_tokens = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["version_id", "split", "position"]
        constraints = [
            models.UniqueConstraint(fields=["version", "example"], name="unique_member"),
        ]


class DatasetBuild(models.Model):
    """One request to build a version of a dataset, run by a worker: its progress, and the version it made.

    Not a field set on DatasetVersion: a version exists only once built (frozen, numbered), and a build that
    finds nothing changed returns the latest version instead of making one.
    """

    dataset = models.ForeignKey(Dataset, on_delete=models.CASCADE, related_name="builds")
    status = models.CharField(max_length=10, choices=WorkStatus.choices, default=WorkStatus.QUEUED, db_index=True)
    done = models.PositiveIntegerField(default=0, help_text="Steps done: each example is checked, then counted.")
    total = models.PositiveIntegerField(default=0)
    stage = models.CharField(max_length=100, blank=True)
    version = models.ForeignKey(DatasetVersion, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_new = models.BooleanField(default=False, help_text="False: nothing changed, the latest version stands.")
    error = models.TextField(blank=True)
    lease_until = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self):
        return f"Build {self.pk} of {self.dataset.name}"


class ProductionImport(models.Model):
    """One uploaded production-times CSV, imported by a worker: progress, counts, and each bad line by number.

    The file is kept in storage (not a temp path of the web host) so a worker on any machine reads it, and deleted
    once the import has finished: its counts and every bad line stay on the row, with its name, size and hash.
    """

    file = models.FileField(upload_to="imports/production/%Y/%m/", blank=True, help_text="Empty once imported.")
    source_name = models.CharField(max_length=255, help_text="The uploaded file's name.")
    size = models.PositiveBigIntegerField(default=0, help_text="The uploaded file's size in bytes.")
    sha256 = models.CharField(max_length=64, db_index=True)
    status = models.CharField(max_length=10, choices=WorkStatus.choices, default=WorkStatus.QUEUED, db_index=True)
    done = models.PositiveIntegerField(default=0)
    total = models.PositiveIntegerField(default=0)
    stage = models.CharField(max_length=100, blank=True)
    report = models.JSONField(
        default=dict,
        blank=True,
        help_text="The import's report: counts, and "
        'invalid: [{"line", "reason", "part_number"}], each bad line (good lines are kept).',
    )
    summary = models.TextField(blank=True)
    error = models.TextField(blank=True)
    lease_until = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            # The same bytes posted twice at once: the database lets one be queued (a partial index, on SQLite
            # and PostgreSQL alike); the other request gets IntegrityError and answers with that import.
            models.UniqueConstraint(
                fields=["sha256"],
                condition=models.Q(status__in=ACTIVE),
                name="production_import_one_active_per_file",
            )
        ]

    def __str__(self):
        return f"Import {self.pk} of {self.source_name}"
