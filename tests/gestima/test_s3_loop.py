"""The whole loop on object storage (STORAGE_BACKEND=s3) against a real S3 HTTP endpoint (moto's server mode).

Upload drawings in the admin -> a real burst worker renders them -> pages in the bucket -> examples, dataset build
-> export job (objects in the bucket, streamed in parts, nothing left unfinished) -> download through the admin
(streamed) -> a training run against the OpenAI stand-in, its file read from the bucket. The web side's MEDIA_ROOT
and the worker's temp folder are separate folders, and both stay empty: nothing relies on a shared disk.
"""

import json
import tempfile
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from curation.models import BaseModel, Dataset, DatasetVersion, Drawing, DrawingPage, Example
from curation.services.base_models import base_models_seed
from finetune.services.run_launch import training_run_create
from tests.factories import make_example, make_task, make_user, technology_target
from tests.finetune.runkit import launch
from tests.openai_standin import StandIn
from tests.openai_standin.fine_tuning import FineTuningAPI

pytestmark = pytest.mark.django_db
DRAWINGS = ("10113153.pdf", "PDM-285800.pdf", "10162527.pdf")
PART_BYTES = 64 * 1024


def _keys(client, bucket, prefix) -> dict[str, int]:
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    return {item["Key"]: item["Size"] for page in pages for item in page.get("Contents", [])}


def _files_under(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.is_file()] if folder.exists() else []


@pytest.fixture
def ft_api(settings):
    """The OpenAI stand-in with the fine-tuning routes, reached by the real SDK through OPENAI_BASE_URL."""
    with StandIn() as api:
        FineTuningAPI().install(api)
        settings.OPENAI_API_KEY = "sk-test-not-a-real-key"
        settings.OPENAI_BASE_URL = api.base_url
        settings.OPENAI_TIMEOUT_SECONDS = 5
        yield api


@pytest.fixture
def separate_disks(settings, tmp_path, monkeypatch):
    """The web side's MEDIA_ROOT (with EXPORTS_ROOT and RUNS_ROOT in it) and the worker's temp folder, apart."""
    web = tmp_path / "web-media"
    settings.MEDIA_ROOT = web
    settings.EXPORTS_ROOT = web / "exports"
    settings.RUNS_ROOT = web / "runs"
    worker_tmp = tmp_path / "worker-tmp"
    worker_tmp.mkdir()
    return web, worker_tmp


@pytest.fixture
def worker_on_its_own_disk(run_worker, separate_disks, monkeypatch):
    """Run the burst worker with its temp folder (render work dirs, downloads) on its own disk."""
    _, worker_tmp = separate_disks

    def run(*queues):
        with monkeypatch.context() as patch:
            patch.setenv("TMPDIR", str(worker_tmp))
            patch.setattr(tempfile, "tempdir", str(worker_tmp))
            return run_worker(*queues)

    return run


def test_upload_render_export_download_and_train_through_the_bucket(
    client,
    roles,
    s3_storage,
    separate_disks,
    worker_on_its_own_disk,
    ft_api,
    settings,
    corpus,
    django_capture_on_commit_callbacks,
):
    s3, bucket = s3_storage
    web, worker_tmp = separate_disks
    settings.STORAGE_PART_BYTES = PART_BYTES
    manager = make_user("Manager")
    client.force_login(manager)

    # 1. Drawings uploaded in the admin; a real worker renders them; PDF and pages land in the bucket.
    files = [
        SimpleUploadedFile(name, (corpus / "drawings" / name).read_bytes(), "application/pdf") for name in DRAWINGS
    ]
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(reverse("admin:curation_drawing_upload"), {"files": files})
    assert f"{len(DRAWINGS)} new" in response.content.decode()
    worker_on_its_own_disk("render")
    drawings = list(Drawing.objects.order_by("pk"))
    assert [d.status for d in drawings] == [Drawing.Status.RENDERED] * len(DRAWINGS), [d.error for d in drawings]
    media = _keys(s3, bucket, "media/")
    for drawing in drawings:
        assert f"media/{drawing.file.name}" in media
    pages = DrawingPage.objects.filter(drawing__in=drawings)
    assert pages.exists()
    for page in pages:
        assert media[f"media/{page.image.name}"] == page.bytes

    # The PDF and the page image a reviewer opens come from the bucket.
    pdf = client.get(reverse("admin:curation_drawing_pdf", args=[drawings[0].pk]))
    assert pdf.status_code == 200 and pdf.streaming
    assert b"".join(pdf.streaming_content) == (corpus / "drawings" / drawings[0].original_name).read_bytes()
    page = pages.first()
    shown = client.get(reverse("admin:curation_page_image", args=[page.pk]))
    assert shown.status_code == 200
    assert b"".join(shown.streaming_content if shown.streaming else [shown.content])[:2] in (b"\xff\xd8", b"\x89P")

    # 2. Approved examples on those pages; the Manager builds a version (page hashes read from the bucket).
    base_models_seed()
    task = make_task()
    for drawing in drawings:
        for minutes in (10, 20, 30, 40):
            make_example(
                task=task,
                drawing=drawing,
                status=Example.Status.APPROVED,
                target=technology_target(drawing.part_number, minutes=minutes + drawing.pk),
            )
    dataset = Dataset.objects.create(name="bucket loop", task=task, validation_fraction=0.34, split_seed=3)
    with django_capture_on_commit_callbacks(execute=True):
        client.post(
            reverse("admin:curation_dataset_changelist"), {"action": "build_version", "_selected_action": [dataset.pk]}
        )
    worker_on_its_own_disk("default")  # builds run in a worker too
    version = DatasetVersion.objects.get(dataset=dataset)
    assert version.members.count() == 4 * len(DRAWINGS)

    # 3. The export job streams the files into the bucket: complete objects, uploaded in parts, none unfinished.
    with django_capture_on_commit_callbacks(execute=True):
        client.post(reverse("admin:curation_datasetversion_export", args=[version.pk]))
    worker_on_its_own_disk("default")
    version.refresh_from_db()
    assert version.export_status == DatasetVersion.ExportStatus.DONE, version.export_error
    folder = f"exports/bucket-loop-v{version.number}-openai"
    assert version.export_dir == f"s3://{bucket}/{folder}"
    exported = _keys(s3, bucket, folder + "/")
    assert set(exported) == {f"{folder}/{name}" for name in ("train.jsonl", "validation.jsonl", "manifest.json")}
    assert not s3.list_multipart_uploads(Bucket=bucket).get("Uploads")
    train = s3.get_object(Bucket=bucket, Key=f"{folder}/train.jsonl")
    train_bytes = train["Body"].read()
    assert len(train_bytes) > 2 * PART_BYTES
    # A multipart upload's ETag ends in its part count: a part goes up once a whole line takes it past 64 KiB.
    longest = max(len(line) + 1 for line in train_bytes.splitlines())
    parts = int(train["ETag"].strip('"').rsplit("-", 1)[1])
    assert len(train_bytes) // (PART_BYTES + longest) <= parts <= -(-len(train_bytes) // PART_BYTES) and parts > 1
    assert version.manifest["files"]["train.jsonl"]["bytes"] == len(train_bytes)
    assert json.loads(train_bytes.splitlines()[0])["messages"][1]["content"][1]["image_url"]["url"].startswith(
        "data:image/"
    )

    # 4. Download through the admin: streamed from the bucket, byte for byte.
    download = client.get(reverse("admin:curation_datasetversion_download", args=[version.pk, "train.jsonl"]))
    assert download.status_code == 200 and download.streaming
    assert int(download["Content-Length"]) == len(train_bytes)
    assert b"".join(download.streaming_content) == train_bytes

    # 5. A training run on the OpenAI stand-in: its file is written to and read from the bucket.
    base_model = BaseModel.objects.get(name="gpt-4o-2024-08-06")
    run = training_run_create(dataset_version=version, base_model=base_model, user=manager, provider="openai")
    run = launch(
        run, manager, worker_on_its_own_disk, django_capture_on_commit_callbacks, override_reason="a bucket rehearsal"
    )
    assert run.job_id and run.training_file_id, (run.status, run.sync_error, run.error_message)
    assert run.run_dir == f"s3://{bucket}/runs/{run.pk}"
    in_bucket = s3.get_object(Bucket=bucket, Key=f"runs/{run.pk}/train.jsonl")["Body"].read()
    assert ft_api.fine_tuning.file_bytes[run.training_file_id] == in_bucket == train_bytes

    # Nothing was written to the web side's disk, and the worker left nothing of ours in its temp folder (render
    # work dirs, page files, export parts); `.ses` is the token counter's (bpe_openai) own marker.
    assert _files_under(web) == []
    assert [p.name for p in _files_under(worker_tmp) if p.name != ".ses"] == []
