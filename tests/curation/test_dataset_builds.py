"""Dataset builds requested at the same instant: one build and one job (the dataset's row lock on PostgreSQL)."""

import os
import threading

import django_rq
import pytest
from django.db import connection

from curation.models import DatasetBuild
from curation.services.dataset_builds import dataset_build_request, dataset_build_run, dataset_build_summary
from curation.services.datasets import dataset_build
from gestima.work import WorkStatus
from tests.curation.test_datasets import approved_examples, make_dataset


@pytest.mark.skipif(not os.environ.get("DATABASE_URL", "").startswith("postgres"), reason="threads need PostgreSQL")
@pytest.mark.django_db(transaction=True)
def test_eight_build_requests_at_the_same_instant_queue_one_build():
    approved_examples(10)
    dataset = make_dataset()
    start, results, errors = threading.Barrier(8), [], []

    def click():
        try:
            start.wait()
            results.append(dataset_build_request(dataset=dataset))
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=click) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    build = DatasetBuild.objects.get()
    assert {b.pk for b, _ in results} == {build.pk} and sum(queued for _, queued in results) == 1
    assert django_rq.get_queue("default").job_ids == [f"dataset-build-{build.pk}"]


@pytest.mark.django_db
def test_a_build_retried_after_its_version_was_made_says_it_built_that_version():
    """A worker killed between the version's commit and the row's `done`: the retry finds the version unchanged,
    but this build made it, so the page says "built", not "nothing changed since the latest version"."""
    approved_examples(10)
    dataset = make_dataset()
    build, _ = dataset_build_request(dataset=dataset, queue=False)
    made = dataset_build(dataset=dataset)  # the killed attempt's version
    DatasetBuild.objects.filter(pk=build.pk).update(status=WorkStatus.QUEUED, attempts=1)
    build = dataset_build_run(build_id=build.pk)
    assert build.status == WorkStatus.DONE and build.version == made and build.created_new
    assert "built" in dataset_build_summary(build) and "nothing changed" not in dataset_build_summary(build)
