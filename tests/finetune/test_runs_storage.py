"""Training runs on object storage: the run's files are written to the bucket and sent to OpenAI from there,
through the Uploads API in parts above the threshold (read as a stream, never copied to a local disk)."""

import json

import pytest

from finetune.models import UploadedFile
from finetune.services.run_launch import training_run_create
from tests.finetune.runkit import launch

pytestmark = pytest.mark.django_db


def test_a_training_file_above_the_threshold_goes_from_the_bucket_to_openai_in_parts(
    s3_storage, ft_api, version, base_model, manager, run_worker, django_capture_on_commit_callbacks, settings
):
    client, bucket = s3_storage
    settings.OPENAI_UPLOAD_PART_THRESHOLD = 500
    settings.OPENAI_UPLOAD_PART_SIZE = 400
    run = training_run_create(dataset_version=version, base_model=base_model, user=manager, provider="openai")
    run = launch(run, manager, run_worker, django_capture_on_commit_callbacks)
    assert run.job_id and run.run_dir == f"s3://{bucket}/runs/{run.pk}"
    train = client.get_object(Bucket=bucket, Key=f"runs/{run.pk}/train.jsonl")["Body"].read()
    assert len(train) > 500
    parts = ft_api.calls_to("POST", "/uploads/[^/]+/parts")
    assert len(parts) >= -(-len(train) // 400) and all(len(p.form()["data"][1]) <= 400 for p in parts)
    assert ft_api.fine_tuning.file_bytes[run.training_file_id] == train
    assert UploadedFile.objects.get(remote_id=run.training_file_id).multipart
    # The small validation file went through the Files API, also from the bucket.
    validation = client.get_object(Bucket=bucket, Key=f"runs/{run.pk}/validation.jsonl")["Body"].read()
    if len(validation) <= 500:
        assert ft_api.fine_tuning.file_bytes[run.validation_file_id] == validation
    assert not (settings.RUNS_ROOT / str(run.pk)).exists()


def test_a_dry_run_writes_its_files_and_manifest_into_the_bucket(
    s3_storage, version, base_model, manager, run_worker, django_capture_on_commit_callbacks
):
    client, bucket = s3_storage
    run = training_run_create(dataset_version=version, base_model=base_model, user=manager, provider="dryrun")
    run = launch(run, manager, run_worker, django_capture_on_commit_callbacks)
    assert run.status == "dry_run_complete", (run.status, run.error_message)
    keys = {o["Key"] for o in client.list_objects_v2(Bucket=bucket, Prefix=f"runs/{run.pk}/").get("Contents", [])}
    assert keys == {
        f"runs/{run.pk}/{name}" for name in ("train.jsonl", "validation.jsonl", "manifest.json", "run_manifest.json")
    }
    manifest = json.loads(client.get_object(Bucket=bucket, Key=f"runs/{run.pk}/run_manifest.json")["Body"].read())
    train = client.get_object(Bucket=bucket, Key=f"runs/{run.pk}/train.jsonl")["Body"].read()
    assert manifest["files"]["train"]["bytes"] == len(train)
    assert manifest["files"]["train"]["lines"] == train.count(b"\n")
