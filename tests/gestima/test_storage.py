"""Object storage: settings choose it, an export in the bucket is all or nothing (aborted or killed), a killed
export's unfinished upload is cleared by recovery, and a large file goes to OpenAI from the bucket in parts."""

import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from django.db import connections
from django.urls import reverse
from django.utils import timezone

from curation.models import DatasetVersion
from curation.services.export_queue import dataset_version_exports_abandoned_recover
from curation.services.exports import ExportError, dataset_version_export_store, default_export_name, export_file_open
from gestima.storage import exports_storage
from tests.curation.test_export import build_version
from tests.factories import make_drawing, make_user

ROOT = Path(__file__).resolve().parents[2]
EXPORTED = {"train.jsonl", "validation.jsonl", "manifest.json"}


def _objects(client, bucket, prefix=""):
    return [
        o["Key"]
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        for o in page.get("Contents", [])
    ]


def _unfinished(client, bucket):
    return client.list_multipart_uploads(Bucket=bucket).get("Uploads", [])


def test_storage_backend_s3_needs_a_bucket_and_selects_one_for_every_file():
    def settings_of(**env):
        base = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "STORAGE_"))}
        code = (
            "import django; django.setup(); from django.conf import settings; "
            "print({k: v['BACKEND'] for k, v in settings.STORAGES.items() if k != 'staticfiles'})"
        )
        return subprocess.run(
            [sys.executable, "-c", code],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
            env={**base, "DJANGO_SETTINGS_MODULE": "gestima.settings", "DEBUG": "True", **env},
        )

    refused = settings_of(STORAGE_BACKEND="s3")
    assert refused.returncode != 0 and "STORAGE_BACKEND=s3 needs AWS_STORAGE_BUCKET_NAME" in refused.stderr
    chosen = settings_of(STORAGE_BACKEND="s3", AWS_STORAGE_BUCKET_NAME="drawings")
    assert chosen.returncode == 0, chosen.stderr
    assert chosen.stdout.count("storages.backends.s3.S3Storage") == 3  # default (media), exports, runs
    local = settings_of()
    assert local.returncode == 0 and "S3Storage" not in local.stdout and "FileSystemStorage" in local.stdout


@pytest.mark.django_db
def test_an_export_aborted_midway_leaves_nothing_in_the_bucket(s3_storage, settings):
    client, bucket = s3_storage
    settings.STORAGE_PART_BYTES = 16 * 1024  # several parts already sent when it stops
    version, _ = build_version()

    def stop(done, total):
        if done == 10:
            raise KeyboardInterrupt("stop")

    with pytest.raises(KeyboardInterrupt):
        dataset_version_export_store(version=version, storage=exports_storage(), folder="v", progress=stop)
    assert _objects(client, bucket, "exports/") == [] and _unfinished(client, bucket) == []


@pytest.mark.django_db(transaction=True)
def test_an_export_killed_in_the_bucket_shows_nothing_and_recovery_clears_its_upload(s3_storage, settings):
    """A real kill (os._exit in a forked child: no cleanup runs) leaves only an unfinished multipart upload,
    which no reader sees; taking the export back aborts it, and the export then succeeds."""
    client, bucket = s3_storage
    settings.STORAGE_PART_BYTES = 16 * 1024
    version, _ = build_version()
    folder = default_export_name(version, "openai")

    def die(done, total):
        if done == 10:
            os._exit(9)

    pid = os.fork()
    if pid == 0:  # child
        try:
            if connections["default"].vendor != "sqlite":
                connections["default"].connection = None  # never touch the parent's socket: reconnect
            dataset_version_export_store(
                version=DatasetVersion.objects.get(pk=version.pk),
                storage=exports_storage(),
                folder=folder,
                progress=die,
            )
        finally:
            os._exit(0)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 9
    assert _objects(client, bucket, "exports/") == []
    assert {u["Key"] for u in _unfinished(client, bucket)} == {f"exports/{folder}/train.jsonl"}

    # The job's row as the killed worker left it: running, its lease run out.
    DatasetVersion.objects.filter(pk=version.pk).update(
        export_status=DatasetVersion.ExportStatus.RUNNING,
        export_format="openai",
        export_attempts=1,
        export_lease_until=timezone.now() - timedelta(seconds=1),
    )
    assert dataset_version_exports_abandoned_recover(version_ids=[version.pk]) == {"queued": [version.pk], "failed": []}
    assert _unfinished(client, bucket) == []

    written = dataset_version_export_store(version=version, storage=exports_storage(), folder=folder)
    assert {key.rsplit("/", 1)[1] for key in _objects(client, bucket, "exports/")} == EXPORTED
    assert written.manifest["files"]["train.jsonl"]["lines"] == version.members.filter(split="train").count()


@pytest.mark.django_db
def test_a_version_exported_to_a_local_folder_before_the_move_to_the_bucket_asks_to_export_again(
    s3_storage, settings, tmp_path
):
    version, _ = build_version()
    DatasetVersion.objects.filter(pk=version.pk).update(
        export_status=DatasetVersion.ExportStatus.DONE, export_dir=str(tmp_path / "exports" / "export-me-v1-openai")
    )
    version.refresh_from_db()
    with pytest.raises(ExportError, match="is gone from .*export-me-v1-openai: export again"):
        export_file_open(version=version, name="train.jsonl")


@pytest.mark.django_db
def test_a_drawing_pdf_streams_from_the_bucket_and_one_gone_from_it_is_a_404(s3_storage, client, roles):
    s3, bucket = s3_storage
    drawing = make_drawing(part_number="GONE-1")
    client.force_login(make_user("Manager"))
    url = reverse("admin:curation_drawing_pdf", args=[drawing.pk])
    shown = client.get(url)
    key = f"media/{drawing.file.name}"
    assert (
        shown.status_code == 200
        and b"".join(shown.streaming_content) == s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    )
    s3.delete_object(Bucket=bucket, Key=key)
    assert client.get(url).status_code == 404
