"""Dataset builds as background work: a request records a DatasetBuild and queues its job; the job builds.

A build reads every page image and counts every line's tokens (seconds per thousand examples), so it runs
in a worker; the row carries its progress and, once done, the version it made (or found unchanged). A second
click while a build of the dataset is under way returns that build: one job per dataset at a time.
"""

from __future__ import annotations

import logging

from django.db import transaction
from django.utils import timezone

from curation.models import Dataset, DatasetBuild
from curation.services.datasets import DatasetBuildError, dataset_build
from gestima.leases import lease_kept
from gestima.queues import queue_ping
from gestima.work import ACTIVE, WorkKind, WorkStatus

logger = logging.getLogger(__name__)

BUILD = WorkKind(
    model=DatasetBuild,
    queue="default",
    job="curation.jobs.dataset_build_job",
    failure_hook="curation.jobs.dataset_build_job_failed",
    job_id_prefix="dataset-build",
    doing="building this dataset",
    again="Build the dataset again",
    stopped="The build stopped",
)
dataset_build_job_id = BUILD.job_id
_STAGES = ("reading page images", "checking lines")


def dataset_build_request(*, dataset: Dataset, user=None, queue: bool = True) -> tuple[DatasetBuild, bool]:
    """Queue a build of the dataset (after commit); returns (build, queued now).

    A build of the dataset already queued or running is returned as it is (False): no second job. Two requests
    at once are one build: the dataset's row lock on PostgreSQL; on SQLite the write lock every transaction takes
    at BEGIN (settings: IMMEDIATE). With `queue=False` (a command's --sync) no job is sent and Redis is not
    asked: the caller runs the build itself. Raises QueueUnavailable when Redis does not answer (nothing recorded).
    """
    if queue:
        queue_ping(BUILD.queue)
    with transaction.atomic():
        Dataset.objects.select_for_update().filter(pk=dataset.pk).first()  # two clicks at once: one build
        current = DatasetBuild.objects.filter(dataset=dataset, status__in=ACTIVE).order_by("-pk").first()
        if current is not None:
            if not queue or BUILD.is_active(current):
                return current, False
            return BUILD.requeue(current), True  # its job was lost: queue it again
        build = DatasetBuild.objects.create(
            dataset=dataset, requested_by=user if getattr(user, "pk", None) else None, stage="waiting for a worker"
        )
        if queue:
            BUILD.queue_job(build.pk)
    return build, True


def dataset_build_run(*, build_id: int) -> DatasetBuild | None:
    """The job's work: claim the row, build with progress, record the version (or the reason it failed)."""
    if not BUILD.claim(build_id):
        return None  # done already, or another worker has it
    build = DatasetBuild.objects.select_related("dataset__task", "requested_by").get(pk=build_id)
    record = BUILD.progress(build_id)

    def progress(stage: str, done: int, total: int) -> None:
        # Two passes over the examples: the bar runs 0-50 % reading images, 50-100 % checking lines.
        index = _STAGES.index(stage) if stage in _STAGES else 0
        if done in (0, total) or index != getattr(progress, "stage", None):
            progress.stage = index
            DatasetBuild.objects.filter(pk=build_id).update(stage=stage)
        record(index * total + done, 2 * total, force=done == total)

    try:
        with lease_kept(lambda: BUILD.lease_renew(build_id)):
            version = dataset_build(dataset=build.dataset, user=build.requested_by, progress=progress)
    except DatasetBuildError as exc:
        BUILD.fail(build_id, error=str(exc))
        return DatasetBuild.objects.get(pk=build_id)
    except Exception as exc:
        logger.exception("build %s failed", build_id)
        BUILD.fail(build_id, error=f"{BUILD.stopped}: {type(exc).__name__}: {exc}")
        raise
    DatasetBuild.objects.filter(pk=build_id, status=WorkStatus.RUNNING).update(
        status=WorkStatus.DONE,
        version=version,
        # Made since this build was asked for, by this attempt or by one whose worker was killed after the
        # version's commit (the retry then finds it unchanged): either way, this build made it.
        created_new=version.created_at >= build.created_at,
        stage="",
        finished_at=timezone.now(),
        lease_until=None,
    )
    return DatasetBuild.objects.get(pk=build_id)


def dataset_builds_abandoned_recover() -> dict[str, list[int]]:
    return BUILD.recover()


def dataset_build_summary(build: DatasetBuild) -> str:
    """What the build page and the action's message say about a finished build."""
    if build.status == WorkStatus.FAILED:
        return f"Failed: {build.error}"
    if build.status != WorkStatus.DONE or build.version is None:
        return f"{build.get_status_display()}: {build.stage or 'waiting for a worker'}"
    version = build.version
    failed = [g["message"] for g in version.gates if not g["passed"]]
    made = "built" if build.created_new else "nothing changed since the latest version"
    return f"{version} {made}: " + ("ready" if not failed else f"NOT ready: {'; '.join(failed)}")
