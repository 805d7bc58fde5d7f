"""Production-CSV imports as work rows: the stored file is deleted once imported (name, size, hash and outcome stay
on the row), the recovery sweeps files left by a killed worker, and the same file queued twice at once is one import.
"""

import hashlib
import os
import threading

import django_rq
import pytest
from django.core.files.base import ContentFile
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import IntegrityError, connection, transaction

from curation.models import ProductionImport, ProductionRecord
from curation.services.production_imports import production_import_request, production_import_run
from gestima.recovery import abandoned_jobs_recover
from tests.curation.test_production import HEADER

CONTENT = (HEADER + "R-1,O1,DMU 50,milling,10,1.5,20,\n" + "R-2,O2,DMU 50,milling,ten,1.5,20,\n").encode()


def _upload(content=CONTENT, name="shop.csv"):
    return SimpleUploadedFile(name, content, "text/csv")


def _stored_files(storage, folder="imports/production"):
    """Every file under the imports folder, whichever storage (local folder or bucket)."""
    names = []
    pending = [folder]
    while pending:
        current = pending.pop()
        try:
            dirs, files = storage.listdir(current)
        except FileNotFoundError:
            continue
        names += [f"{current}/{name}" for name in files]
        pending += [f"{current}/{name}" for name in dirs]
    return names


def _import_and_run(django_capture_on_commit_callbacks, run_worker, content=CONTENT):
    with django_capture_on_commit_callbacks(execute=True):
        row, queued = production_import_request(file=_upload(content))
    assert queued
    storage, name = row.file.storage, row.file.name
    assert storage.exists(name)  # kept while queued: the worker reads it from storage
    run_worker("default")
    row.refresh_from_db()
    return row, storage, name


@pytest.mark.django_db
def test_a_finished_import_deletes_its_file_and_keeps_name_size_hash_and_every_bad_line(
    run_worker, django_capture_on_commit_callbacks
):
    row, storage, name = _import_and_run(django_capture_on_commit_callbacks, run_worker)
    assert row.status == "done" and "1 invalid" in row.summary
    assert [line["line"] for line in row.report["invalid"]] == [3]
    assert not storage.exists(name) and not row.file and _stored_files(storage) == []
    assert (row.source_name, row.size, row.sha256) == ("shop.csv", len(CONTENT), hashlib.sha256(CONTENT).hexdigest())
    assert production_import_run(import_id=row.pk) is None  # a re-run finds it done (and needs no file)


@pytest.mark.django_db
def test_a_file_refused_as_a_whole_is_deleted_too_and_the_reason_kept(run_worker, django_capture_on_commit_callbacks):
    row, storage, name = _import_and_run(django_capture_on_commit_callbacks, run_worker, content=b"not,a,csv\n1,2,3\n")
    assert row.status == "failed" and row.error and not storage.exists(name) and not row.file
    assert not ProductionRecord.objects.exists()


@pytest.mark.django_db
def test_the_recovery_deletes_files_that_finished_imports_left_behind_and_never_a_waiting_ones():
    left = ProductionImport(source_name="old.csv", sha256="1" * 64, status="done", size=3)
    left.file.save("left.csv", ContentFile(b"old"), save=True)  # a worker killed between finishing and deleting
    failed = ProductionImport(source_name="bad.csv", sha256="2" * 64, status="failed", error="timeout", size=3)
    failed.file.save("failed.csv", ContentFile(b"bad"), save=True)  # failed by RQ's timeout hook
    waiting = ProductionImport(source_name="new.csv", sha256="3" * 64, status="queued", size=3)
    waiting.file.save("waiting.csv", ContentFile(b"new"), save=True)
    storage = left.file.storage
    names = {row.pk: row.file.name for row in (left, failed, waiting)}

    assert sorted(abandoned_jobs_recover()["import_files"]["removed"]) == sorted([left.pk, failed.pk])
    assert [storage.exists(names[pk]) for pk in (left.pk, failed.pk, waiting.pk)] == [False, False, True]
    assert list(ProductionImport.objects.exclude(file="").values_list("pk", flat=True)) == [waiting.pk]
    assert abandoned_jobs_recover()["import_files"] == {"removed": []}  # nothing left: a second pass is a no-op


@pytest.mark.django_db
def test_in_a_bucket_the_file_is_deleted_once_imported(s3_storage, run_worker, django_capture_on_commit_callbacks):
    s3, bucket = s3_storage
    with django_capture_on_commit_callbacks(execute=True):
        row, _ = production_import_request(file=_upload())
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])]
    assert len(keys) == 1 and keys[0].endswith(".csv")  # the worker reads it from the bucket
    run_worker("default")
    row.refresh_from_db()
    assert row.status == "done" and ProductionRecord.objects.count() == 1
    assert s3.list_objects_v2(Bucket=bucket).get("Contents", []) == [] and row.size == len(CONTENT)


@pytest.mark.django_db
def test_a_second_identical_upload_answers_with_the_import_under_way(client, roles, django_capture_on_commit_callbacks):
    from django.urls import reverse

    from tests.factories import make_user

    client.force_login(make_user("Manager"))
    url = reverse("admin:curation_productionrecord_import")
    with django_capture_on_commit_callbacks(execute=True):
        client.post(url, {"file": _upload()})
    first = ProductionImport.objects.get()
    with django_capture_on_commit_callbacks(execute=True):
        page = client.post(url, {"file": _upload(name="renamed.csv")}, follow=True).content.decode()
    assert f"Renamed.csv: this file is already being imported (import #{first.pk})" in page
    assert ProductionImport.objects.count() == 1 and django_rq.get_queue("default").count == 1
    assert _stored_files(first.file.storage) == [first.file.name]  # the second copy was not kept


@pytest.mark.django_db
def test_the_database_refuses_a_second_active_import_of_the_same_bytes():
    """The constraint is what makes simultaneous uploads safe (both databases); a finished import does not count."""
    ProductionImport.objects.create(source_name="a.csv", sha256="a" * 64, status="done")
    ProductionImport.objects.create(source_name="a.csv", sha256="a" * 64, status="queued")
    with pytest.raises(IntegrityError), transaction.atomic():
        ProductionImport.objects.create(source_name="b.csv", sha256="a" * 64, status="running")
    ProductionImport.objects.create(source_name="c.csv", sha256="c" * 64, status="queued")


@pytest.mark.skipif(not os.environ.get("DATABASE_URL", "").startswith("postgres"), reason="threads need PostgreSQL")
@pytest.mark.django_db(transaction=True)
def test_eight_identical_uploads_at_the_same_instant_queue_one_import():
    start, results, errors = threading.Barrier(8), [], []

    def post():
        try:
            start.wait()
            results.append(production_import_request(file=_upload()))
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=post) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    row = ProductionImport.objects.get()
    assert {r.pk for r, _ in results} == {row.pk} and sum(queued for _, queued in results) == 1
    assert django_rq.get_queue("default").job_ids == [f"production-import-{row.pk}"]
    assert _stored_files(row.file.storage) == [row.file.name]  # the losers' copies were deleted


@pytest.mark.django_db
def test_a_second_upload_right_after_the_first_waits_for_its_job_and_a_lost_job_is_queued_again(
    django_capture_on_commit_callbacks,
):
    from datetime import timedelta

    from django.utils import timezone

    with django_capture_on_commit_callbacks(execute=False):  # committed, its job not yet sent to Redis
        row, _ = production_import_request(file=_upload())
    assert production_import_request(file=_upload()) == (row, False)  # not taken for lost: no second send
    assert django_rq.get_queue("default").count == 0

    ProductionImport.objects.filter(pk=row.pk).update(created_at=timezone.now() - timedelta(minutes=1))
    with django_capture_on_commit_callbacks(execute=True):  # a minute on, still no job: Redis lost it
        again, queued = production_import_request(file=_upload())
    assert (again.pk, queued) == (row.pk, True)
    assert django_rq.get_queue("default").job_ids == [f"production-import-{row.pk}"]
