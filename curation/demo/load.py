"""Loading the demo data: reference tables, tasks, demo drawings (rendered at once), records, ground truth,
examples (the generated parts' approved by the demo reviewer, the hand-made ones left for review), a dataset whose
version passes the gates, and the demo logins. Idempotent: a second run finds everything in place and changes nothing.
Tasks it creates are marked `demo`: only those may promote or ask the simulated provider's models.
"""

import secrets
from dataclasses import dataclass, field
from pathlib import Path

from django.conf import settings
from django.contrib.auth.models import Group, User
from django.db import transaction

from curation.demo.drawings import DEMO_PARTS
from curation.demo.records import MACHINES, MATERIAL_ALIASES, demo_material, demo_production_csv
from curation.models import Dataset, DatasetVersion, Drawing, Example, GroundTruth, Machine, MaterialAlias, Task
from curation.services.datasets import dataset_build
from curation.services.examples import examples_build
from curation.services.ground_truth import ground_truth_material_set, ground_truth_refresh
from curation.services.production import production_records_import
from gestima.roles import roles_sync
from curation.services.tasks import task_create_from_preset
from curation.task_presets import DRAWING_TASK_SLUG, PRESETS
from gestima.queues import QueueUnavailable

DEMO_TASKS = list(PRESETS)  # every task the shop trains
DEMO_USERS = [("admin", None), ("reviewer", "Reviewer"), ("manager", "Manager")]
DEMO_DATASET = "Demo: technology builder"
# Half the parts validate; seed 22 puts 22 of the 40 approved parts there (the promotion policy asks for 20;
# near-duplicate drawings share a group, so the seed was chosen on the built examples).
DEMO_DATASET_SETTINGS = {"validation_fraction": 0.5, "split_seed": 22, "epochs": 3}
# The hand-made parts stay pending, so the review screen has work to show.
LEFT_FOR_REVIEW = {part.part_number for part in DEMO_PARTS}


@dataclass
class DemoReport:
    lines: list = field(default_factory=list)  # what happened, for the person running it
    logins: list = field(default_factory=list)  # (username, new password / "" from env / None unchanged, role)

    def say(self, text: str) -> None:
        self.lines.append(text)


def _reference_tables(report: DemoReport) -> None:
    created = 0
    for name, spindles, kind, aliases in MACHINES:
        # get_or_create, not update: a manager's edits to the reference tables survive a re-run.
        _, new = Machine.objects.get_or_create(
            name=name, defaults={"spindles": spindles, "kind": kind, "aliases": aliases}
        )
        created += new
    for written, norm in MATERIAL_ALIASES:
        created += MaterialAlias.objects.get_or_create(written=written, defaults={"norm": norm})[1]
    report.say(
        f"reference tables: {created} rows added ({len(MACHINES)} machines, {len(MATERIAL_ALIASES)} material aliases)"
    )


def _base_models(report: DemoReport) -> None:
    try:
        from curation.services.base_models import base_models_seed
    except ImportError:
        return
    seeded = base_models_seed()
    report.say(f"base-model price table: {len(seeded) if seeded is not None else 'seeded'}")


def _ingest(name: str, data: bytes):
    """The demo drawing through the real ingest service (the same path as an upload)."""
    from curation.services.drawing_uploads import drawing_ingest

    drawing, _ = drawing_ingest(content=data, original_name=name)
    return drawing


def _drawings(report: DemoReport) -> list[Drawing]:
    try:
        from curation.demo.drawings import demo_drawing_pdfs
        from curation.services import drawings as drawing_services  # noqa: F401
    except ImportError as exc:
        report.say(f"demo drawings: not available in this build ({exc}); skipped")
        return []
    import hashlib

    drawings, queue_down = [], False
    for name, data in demo_drawing_pdfs():
        existing = Drawing.objects.filter(sha256=hashlib.sha256(data).hexdigest()).first()
        if existing is not None:
            drawings.append(existing)
            continue
        try:
            drawing = _ingest(name, data)
        except QueueUnavailable:
            # The upload is saved before the render job is enqueued: find it and go on.
            queue_down = True
            drawing = Drawing.objects.filter(sha256=hashlib.sha256(data).hexdigest()).first()
        if drawing is not None:
            drawings.append(drawing)
    if queue_down:
        report.say("the job queue (Redis) is unavailable: drawings are saved and render here or once a worker runs")
    render = getattr(drawing_services, "drawing_render", None)
    rendered_here = 0
    for drawing in drawings:
        drawing.refresh_from_db()
        if drawing.status != Drawing.Status.RENDERED and render is not None:
            # Rendered here, so a newcomer sees pages and examples at once; the render job claims the
            # drawing by status, so a worker picking up the queued job later finds the work done.
            render(drawing=drawing)
            drawing.refresh_from_db()
            rendered_here += drawing.status == Drawing.Status.RENDERED
    report.say(
        f"demo drawings: {len(drawings)} ({rendered_here} rendered now, "
        f"{sum(d.status == Drawing.Status.RENDERED for d in drawings)} rendered in all)"
    )
    return drawings


def _records_and_truth(report: DemoReport, drawings: list[Drawing]) -> None:
    part_numbers = sorted({d.part_number or Path(d.original_name).stem for d in drawings})
    if not part_numbers:
        return
    imported = production_records_import(text=demo_production_csv(part_numbers), source_name="demo data")
    report.say(f"production records: {imported.summary()}")
    ground_truth_refresh(part_numbers=part_numbers)
    for ground_truth in GroundTruth.objects.filter(part_number__in=part_numbers, material=""):
        # A scanned demo drawing has no text layer to read the material from: give it one, as a person would.
        ground_truth_material_set(ground_truth=ground_truth, material=demo_material(ground_truth.part_number))
    report.say(f"ground truth: {GroundTruth.objects.filter(part_number__in=part_numbers).count()} parts")


def _users(report: DemoReport, *, reset_passwords: bool) -> None:
    groups = roles_sync()
    for username, role in DEMO_USERS:
        user = User.objects.filter(username=username).first()
        shown = None  # None: unchanged; "": set from DEMO_ADMIN_PASSWORD (never echoed); else the new password
        if user is None or reset_passwords:
            from_env = settings.DEMO_ADMIN_PASSWORD if role is None else ""
            password = from_env or secrets.token_urlsafe(12)
            shown = "" if from_env else password
            if user is None:
                user = User(username=username, is_staff=True, is_superuser=role is None)
            user.set_password(password)
            user.save()
        if role and not user.groups.filter(name=role).exists():
            user.groups.add(groups[role] if role in groups else Group.objects.get(name=role))
        report.logins.append((username, shown, role or "superuser"))


def _tasks(report: DemoReport) -> None:
    existing = set(Task.objects.filter(slug__in=DEMO_TASKS).values_list("slug", flat=True))
    for slug in DEMO_TASKS:
        task = task_create_from_preset(slug=slug)
        if slug not in existing:
            # Only tasks made here are demo tasks: a task the shop made itself stays real.
            Task.objects.filter(pk=task.pk).update(demo=True)
    report.say(f"tasks: {', '.join(DEMO_TASKS)}")


def _approve(report: DemoReport, task: Task) -> None:
    """The generated parts' examples, approved as the demo reviewer would (the hand-made ones are left for review)."""
    from curation.services.review import example_approve

    reviewer = User.objects.filter(username="reviewer").first()
    pending = Example.objects.filter(
        task=task, status=Example.Status.PENDING, drawing__isnull=False, group_key__startswith="DEMO-"
    ).exclude(group_key__in=LEFT_FOR_REVIEW)
    approved = 0
    for example in pending:
        example_approve(example=example, user=reviewer, note="demo data: approved by the demo loader")
        approved += 1
    report.say(
        f"examples approved for the demo dataset: {approved} ({', '.join(sorted(LEFT_FOR_REVIEW))} left for review)"
    )


def _dataset(report: DemoReport, task: Task) -> DatasetVersion | None:
    dataset, _ = Dataset.objects.get_or_create(name=DEMO_DATASET, defaults={"task": task, **DEMO_DATASET_SETTINGS})
    if not Example.objects.filter(task=task, status=Example.Status.APPROVED).exists():
        return None
    version = dataset_build(dataset=dataset)
    counts = version.counts or {}
    report.say(
        f"dataset {version}: {counts.get('train', 0)} train / {counts.get('validation', 0)} validation, "
        + ("gates pass: ready to launch" if version.gates_passed else "gates fail (see the dataset page)")
    )
    return version


def demo_data_load(*, reset_passwords: bool = False) -> DemoReport:
    report = DemoReport()
    with transaction.atomic():
        _reference_tables(report)
        _tasks(report)
        _base_models(report)
    drawings = _drawings(report)  # outside the transaction: ingest enqueues on commit, render writes files
    _records_and_truth(report, drawings)
    task = task_create_from_preset(slug=DRAWING_TASK_SLUG)
    built = examples_build(task=task, drawings=[d for d in drawings if d.status == Drawing.Status.RENDERED])
    report.say(f"examples ({task.slug}): {built.summary()}")
    waiting = [d for d in drawings if d.status != Drawing.Status.RENDERED]
    if waiting:
        report.say(
            f"{len(waiting)} drawings are not rendered yet: run `python manage.py build_examples` "
            "once the worker has rendered them"
        )
    _users(report, reset_passwords=reset_passwords)
    if task.demo:
        _approve(report, task)
        _dataset(report, task)
    return report
