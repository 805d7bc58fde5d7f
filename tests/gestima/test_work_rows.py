"""Work rows (gestima/work.py): a build, import or estimate whose worker died is queued again, then failed in words."""

from datetime import timedelta

import django_rq
import pytest
from django.utils import timezone

from curation.models import DatasetBuild
from gestima.recovery import abandoned_jobs_recover
from tests.curation.test_datasets import make_dataset

pytestmark = pytest.mark.django_db


def test_a_build_left_running_by_a_dead_worker_is_queued_again_then_failed_in_words(
    settings, django_capture_on_commit_callbacks
):
    settings.JOB_MAX_ATTEMPTS = 2
    build = DatasetBuild.objects.create(
        dataset=make_dataset(), status="running", attempts=1, lease_until=timezone.now() - timedelta(seconds=5)
    )
    with django_capture_on_commit_callbacks(execute=True):
        assert abandoned_jobs_recover()["builds"] == {"queued": [build.pk], "failed": []}
    build.refresh_from_db()
    assert build.status == "queued" and django_rq.get_queue("default").job_ids == [f"dataset-build-{build.pk}"]

    DatasetBuild.objects.filter(pk=build.pk).update(
        status="running", attempts=2, lease_until=timezone.now() - timedelta(seconds=5)
    )
    assert abandoned_jobs_recover()["builds"] == {"queued": [], "failed": [build.pk]}
    build.refresh_from_db()
    assert build.status == "failed" and "The worker stopped while building this dataset" in build.error

    live = DatasetBuild.objects.create(
        dataset=build.dataset, status="running", attempts=1, lease_until=timezone.now() + timedelta(seconds=30)
    )
    assert live.pk not in abandoned_jobs_recover()["builds"]["queued"]  # a live lease is left alone
