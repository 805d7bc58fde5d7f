"""Training runs end to end: the real SDK over HTTP to the stand-in, a real RQ worker, the services' rules."""

from decimal import Decimal

import pytest
from django.core.exceptions import PermissionDenied

from finetune.models import RunCheckpoint, RunEvent, RunMetric, TrainingRun, UploadedFile
from finetune.services.run_cancel import training_run_cancel, training_run_relaunch
from finetune.services.run_launch import start_job_id, training_run_create, training_run_duplicates, training_run_launch
from finetune.services.run_start import training_run_start
from finetune.services.run_state import TrainingRunError
from finetune.services.run_sync import training_run_sync, training_runs_sync_all
from tests.openai_standin.fine_tuning import quota_error, rate_limited, server_error
from tests.finetune.runkit import launch as _launch, sync_until_done as _sync_until_done

pytestmark = pytest.mark.django_db

FILES = "/files"
JOBS = "/fine_tuning/jobs"


def _create(version, base_model, manager, **kwargs):
    kwargs.setdefault("provider", "openai")
    return training_run_create(dataset_version=version, base_model=base_model, user=manager, **kwargs)


def test_full_run_reaches_succeeded_with_metrics_checkpoints_and_a_model(
    ft_api, version, base_model, manager, run_worker, django_capture_on_commit_callbacks
):
    run = _create(version, base_model, manager, n_epochs=2, suffix="drawings")
    assert run.status == "draft"
    assert run.estimated_cost_usd == Decimal("0.0600")  # 10 x 1000 tokens x 2 epochs x $3/1M

    run = _launch(run, manager, run_worker, django_capture_on_commit_callbacks)
    assert run.status == "validating_files" and run.job_id and run.training_file_id and run.validation_file_id
    created = ft_api.calls_to("POST", JOBS)
    assert len(created) == 1
    body = created[0].json()
    assert body["metadata"]["gestima_run_id"] == str(run.pk)
    assert body["metadata"]["gestima_dataset_hash"] == version.content_hash
    assert body["method"] == {
        "type": "supervised",
        "supervised": {"hyperparameters": {"n_epochs": 2, "batch_size": "auto", "learning_rate_multiplier": "auto"}},
    }
    assert body["suffix"] == "drawings"

    run = _sync_until_done(run)
    assert run.status == "succeeded"
    assert run.fine_tuned_model.startswith("ft:gpt-4o-mini-2024-07-18:standin:drawings")
    assert run.trained_tokens == 123_456
    assert run.actual_cost_usd == Decimal("0.3704")
    assert [t["status"] for t in run.timeline] == [
        "draft",
        "uploading",
        "validating_files",
        "queued",
        "running",
        "succeeded",
    ]
    # Metrics from events and from the (base64) result CSV, merged per step.
    steps = list(RunMetric.objects.filter(run=run).order_by("step"))
    assert [m.step for m in steps] == [1, 2, 3, 4, 5, 6]
    assert steps[0].train_loss == 2.0 and steps[1].valid_loss == 1.1 and steps[1].valid_accuracy == pytest.approx(0.55)
    assert run.result_file_parsed
    assert RunCheckpoint.objects.filter(run=run).count() == 3
    # Events are stored once each, however often we sync.
    count = RunEvent.objects.filter(run=run).count()
    assert count >= 9
    training_run_sync(run=run)
    assert RunEvent.objects.filter(run=run).count() == count
    assert run.sync_error == ""


def test_a_second_launch_and_a_second_worker_make_no_second_job(
    ft_api, version, base_model, manager, run_worker, django_capture_on_commit_callbacks
):
    run = _create(version, base_model, manager)
    run = _launch(run, manager, run_worker, django_capture_on_commit_callbacks)
    with pytest.raises(TrainingRunError, match="already launched"):
        training_run_launch(run=run, user=manager)
    training_run_start(run_id=run.pk)  # a second worker picking the same job up
    run_worker("openai")
    assert len(ft_api.calls_to("POST", JOBS)) == 1
    assert len(ft_api.calls_to("POST", FILES)) == 2  # train + validation, once


def test_quota_failure_then_relaunch_does_not_upload_again(
    ft_api, version, base_model, manager, run_worker, django_capture_on_commit_callbacks
):
    message = "Cost of job $126.09, Quota remaining: $3.65"
    ft_api.fine_tuning.fail_jobs_with = ("exceeded_quota", message)
    run = _launch(_create(version, base_model, manager), manager, run_worker, django_capture_on_commit_callbacks)
    run = _sync_until_done(run)
    assert run.status == "failed"
    assert (run.error_code, run.error_message) == ("exceeded_quota", message)
    uploads = len(ft_api.calls_to("POST", FILES))

    ft_api.fine_tuning.fail_jobs_with = None
    again = training_run_relaunch(run=run, user=manager)
    assert again.status == "draft" and again.relaunched_from == run
    again = _launch(again, manager, run_worker, django_capture_on_commit_callbacks)
    assert again.job_id and again.job_id != run.job_id
    assert again.training_file_id == run.training_file_id
    assert len(ft_api.calls_to("POST", FILES)) == uploads  # nothing uploaded again
    assert _sync_until_done(again).status == "succeeded"


def test_a_new_run_on_the_same_version_reuses_the_uploaded_files(
    ft_api, version, base_model, manager, run_worker, django_capture_on_commit_callbacks
):
    first = _launch(_create(version, base_model, manager), manager, run_worker, django_capture_on_commit_callbacks)
    second = _launch(
        _create(version, base_model, manager, n_epochs=4), manager, run_worker, django_capture_on_commit_callbacks
    )
    assert second.training_file_id == first.training_file_id
    assert len(ft_api.calls_to("POST", FILES)) == 2
    assert UploadedFile.objects.filter(dataset_version=version).count() == 2


def test_insufficient_quota_on_create_is_not_retried_and_fails_clearly(
    ft_api, version, base_model, manager, run_worker, django_capture_on_commit_callbacks
):
    ft_api.script("POST", JOBS, quota_error())
    run = _launch(_create(version, base_model, manager), manager, run_worker, django_capture_on_commit_callbacks)
    assert run.status == "failed"
    assert run.error_code == "insufficient_quota"
    assert "exceeded your current quota" in run.error_message
    assert len(ft_api.calls_to("POST", JOBS)) == 1
    assert run.job_id is None


def test_rate_limits_are_retried_then_the_run_goes_on(
    ft_api, version, base_model, manager, run_worker, django_capture_on_commit_callbacks
):
    ft_api.script("POST", FILES, rate_limited("0"), rate_limited("0"))
    ft_api.script("POST", JOBS, rate_limited("0"))
    run = _launch(_create(version, base_model, manager), manager, run_worker, django_capture_on_commit_callbacks)
    assert run.status == "validating_files" and run.job_id
    assert len(ft_api.calls_to("POST", JOBS)) == 2
    assert len(ft_api.fine_tuning.jobs) == 1


def test_a_create_that_lands_but_answers_500_is_found_by_metadata_not_sent_twice(
    ft_api, version, base_model, manager, run_worker, django_capture_on_commit_callbacks
):
    ft_api.fine_tuning.create_lands_then_500 = 1
    run = _launch(_create(version, base_model, manager), manager, run_worker, django_capture_on_commit_callbacks)
    assert run.job_id
    assert len(ft_api.fine_tuning.jobs) == 1
    assert len(ft_api.calls_to("POST", JOBS)) == 1


def test_5xx_everywhere_keeps_the_run_waiting_and_the_next_sync_starts_it(
    ft_api, version, base_model, manager, run_worker, django_capture_on_commit_callbacks, settings
):
    settings.OPENAI_MAX_ATTEMPTS = 2
    ft_api.script("POST", FILES, server_error(), server_error())
    run = _launch(_create(version, base_model, manager), manager, run_worker, django_capture_on_commit_callbacks)
    assert run.status == "uploading" and run.job_id is None
    assert "server had an error" in run.sync_error
    with django_capture_on_commit_callbacks(execute=True):
        training_runs_sync_all()
    run_worker("openai")
    run.refresh_from_db()
    assert run.status == "validating_files" and run.job_id
    assert len(ft_api.fine_tuning.jobs) == 1


def test_5xx_during_sync_keeps_the_state_and_notes_the_problem(
    ft_api, version, base_model, manager, run_worker, django_capture_on_commit_callbacks, settings
):
    settings.OPENAI_MAX_ATTEMPTS = 1
    run = _launch(_create(version, base_model, manager), manager, run_worker, django_capture_on_commit_callbacks)
    ft_api.script("GET", JOBS + "/[^/]+", server_error())
    run = training_run_sync(run=run)
    assert run.status == "validating_files"
    assert "server had an error" in run.sync_error
    run = training_run_sync(run=run)
    assert run.status == "queued" and run.sync_error == ""


def test_invalid_training_file_keeps_the_providers_message_whole(
    ft_api, version, base_model, manager, run_worker, django_capture_on_commit_callbacks
):
    message = (
        "The job failed due to an invalid training file. Invalid file format. Line 3, message 2: "
        "Unrecognized key 'contents'."
    )
    ft_api.fine_tuning.fail_jobs_with = ("invalid_training_file", message)
    run = _launch(_create(version, base_model, manager), manager, run_worker, django_capture_on_commit_callbacks)
    run = _sync_until_done(run)
    assert run.status == "failed"
    assert run.error_code == "invalid_training_file"
    assert run.error_message == message
    assert run.error_param == "training_file"


def test_multipart_upload_above_the_threshold(
    ft_api, version, base_model, manager, run_worker, django_capture_on_commit_callbacks, settings
):
    settings.OPENAI_UPLOAD_PART_THRESHOLD = 500
    settings.OPENAI_UPLOAD_PART_SIZE = 400
    run = _launch(_create(version, base_model, manager), manager, run_worker, django_capture_on_commit_callbacks)
    assert run.job_id
    folder = settings.RUNS_ROOT / str(run.pk)
    train_size = (folder / "train.jsonl").stat().st_size
    assert train_size > 500
    parts = ft_api.calls_to("POST", "/uploads/[^/]+/parts")
    assert len(parts) >= -(-train_size // 400)  # parts of at most 400 bytes
    assert all(len(p.form()["data"][1]) <= 400 for p in parts)
    # The small validation file still goes through the Files API.
    small = (folder / "validation.jsonl").stat().st_size <= 500
    assert len(ft_api.calls_to("POST", FILES)) == (1 if small else 0)
    file_id = run.training_file_id
    sent = ft_api.fine_tuning.file_bytes[file_id]
    assert sent == (settings.RUNS_ROOT / str(run.pk) / "train.jsonl").read_bytes()
    assert UploadedFile.objects.get(remote_id=file_id).multipart


def test_cancel_cancels_remotely(ft_api, version, base_model, manager, run_worker, django_capture_on_commit_callbacks):
    run = _launch(_create(version, base_model, manager), manager, run_worker, django_capture_on_commit_callbacks)
    run = training_run_cancel(run=run, user=manager)
    assert run.status == "cancelled"
    assert ft_api.fine_tuning.jobs[run.job_id]["status"] == "cancelled"
    assert len(ft_api.calls_to("POST", JOBS + "/[^/]+/cancel")) == 1
    with pytest.raises(TrainingRunError, match="already finished"):
        training_run_cancel(run=run, user=manager)


def test_worker_killed_between_create_and_saving_the_id_is_adopted_by_the_next_sync(
    ft_api, version, base_model, manager, run_worker, django_capture_on_commit_callbacks
):
    import openai

    run = _create(version, base_model, manager)
    with django_capture_on_commit_callbacks(execute=False):  # launched, but its start job never runs ...
        run = training_run_launch(run=run, user=manager)
    # ... because the worker made the job and died before saving the id: the job exists, the row knows nothing.
    client = openai.OpenAI(api_key="sk-test", base_url=ft_api.base_url)
    file_id = client.files.create(file=("train.jsonl", b'{"messages": []}\n'), purpose="fine-tune").id
    remote = client.fine_tuning.jobs.create(model=base_model.name, training_file=file_id, metadata=run.metadata)
    TrainingRun.objects.filter(pk=run.pk).update(worker_claimed_at="2026-01-01T00:00:00Z")

    with django_capture_on_commit_callbacks(execute=True):
        training_runs_sync_all()
    run_worker("openai")
    run.refresh_from_db()
    assert run.job_id == remote.id
    assert len(ft_api.calls_to("POST", JOBS)) == 1  # the one the dead worker made
    assert any(entry.get("note", "").startswith("adopted") for entry in run.timeline)


def test_dry_run_writes_its_files_and_calls_nothing(
    version, base_model, manager, run_worker, django_capture_on_commit_callbacks, settings
):
    settings.OPENAI_API_KEY = ""
    settings.AZURE_OPENAI_API_KEY = ""
    run = training_run_create(dataset_version=version, base_model=base_model, user=manager)
    assert run.provider == "dryrun"
    run = _launch(run, manager, run_worker, django_capture_on_commit_callbacks)
    assert run.status == "dry_run_complete"
    assert run.job_id is None and run.fine_tuned_model == ""
    folder = settings.RUNS_ROOT / str(run.pk)
    import json

    manifest = json.loads((folder / "run_manifest.json").read_text())
    assert manifest["files"]["train"]["lines"] == 10 and manifest["files"]["validation"]["lines"] == 2
    assert manifest["metadata"]["gestima_run_id"] == str(run.pk)
    first = json.loads((folder / "train.jsonl").read_text().splitlines()[0])
    assert first["messages"][-1]["role"] == "assistant"


def test_launch_is_refused_on_failing_gates_or_budget_unless_overridden_with_a_reason(
    version, base_model, manager, settings
):
    settings.OPENAI_API_KEY = ""
    run = training_run_create(dataset_version=version, base_model=base_model, user=manager, budget_usd=Decimal("0.01"))
    with pytest.raises(TrainingRunError, match="over the budget"):
        training_run_launch(run=run, user=manager)
    run.refresh_from_db()
    assert run.status == "draft"
    run = training_run_launch(run=run, user=manager, override_reason="Customer pays for this one")
    assert run.status == "uploading"
    assert run.override and run.override_by == manager
    assert "Customer pays" in run.override_reason and "over the budget" in run.override_reason


def test_reviewer_cannot_launch_cancel_or_relaunch(version, base_model, reviewer):
    run = training_run_create(dataset_version=version, base_model=base_model, user=reviewer, provider="dryrun")
    for call in (
        lambda: training_run_launch(run=run, user=reviewer),
        lambda: training_run_cancel(run=run, user=reviewer),
        lambda: training_run_relaunch(run=run, user=reviewer),
    ):
        with pytest.raises(PermissionDenied):
            call()
    run.refresh_from_db()
    assert run.status == "draft"


def test_the_api_key_is_never_stored_on_rows_or_logged(
    ft_api, version, base_model, manager, run_worker, django_capture_on_commit_callbacks, caplog
):
    import logging

    from django.core import serializers

    caplog.set_level(logging.DEBUG)
    ft_api.script("POST", JOBS, server_error())  # errors and retries get logged: still no key
    run = _launch(_create(version, base_model, manager), manager, run_worker, django_capture_on_commit_callbacks)
    run = _sync_until_done(run)
    rows = serializers.serialize("json", [run, *run.events.all(), *UploadedFile.objects.all()])
    assert "sk-test-not-a-real-key" not in rows
    assert "sk-test-not-a-real-key" not in caplog.text
    assert "sk-test-not-a-real-key" not in str(run.metadata)


def test_dry_run_calls_no_api_even_when_one_is_configured(
    ft_api, version, base_model, manager, run_worker, django_capture_on_commit_callbacks
):
    run = _create(version, base_model, manager, provider="dryrun")
    run = _launch(run, manager, run_worker, django_capture_on_commit_callbacks)
    assert run.status == "dry_run_complete"
    training_runs_sync_all()
    assert ft_api.calls == []


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_managers_and_two_workers_at_once_make_one_job_on_postgresql(
    ft_api, version, base_model, manager, run_worker
):
    """Row locks and conditional updates only mean something with real concurrency: PostgreSQL, threads."""
    import threading

    from django.db import connection

    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL (DATABASE_URL=postgres://...): SQLite has no row locks")
    run = _create(version, base_model, manager)

    def at_once(fn):
        barrier, results = threading.Barrier(2), []

        def worker():
            from django.db import connection as thread_connection

            barrier.wait()
            try:
                results.append(fn())
            except TrainingRunError as exc:
                results.append(f"refused: {exc}")
            finally:
                thread_connection.close()

        threads = [threading.Thread(target=worker) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        return results

    launches = at_once(lambda: training_run_launch(run=run, user=manager).status)
    assert launches.count("uploading") == 1, launches
    assert sum(r.startswith("refused") for r in launches) == 1, launches
    ft_api.fine_tuning.create_delay = 0.3  # widen the window between create and saving the id
    at_once(lambda: training_run_start(run_id=run.pk).status)
    run_worker("openai")  # the enqueued start job runs too: a third try
    run.refresh_from_db()
    assert run.job_id
    assert len(ft_api.fine_tuning.jobs) == 1
    assert len(ft_api.calls_to("POST", JOBS)) == 1


def test_an_unexpected_worker_error_ends_on_the_run(
    ft_api, version, base_model, manager, run_worker, django_capture_on_commit_callbacks, settings
):
    run = _create(version, base_model, manager)
    with django_capture_on_commit_callbacks(execute=True):
        run = training_run_launch(run=run, user=manager)
    TrainingRun.objects.filter(pk=run.pk).update(provider="removed")  # e.g. a provider taken out of the install
    run_worker("openai")
    run.refresh_from_db()
    assert run.status == "failed"
    assert run.error_code == "worker_error" and "unknown provider 'removed'" in run.error_message
    assert run.job_id is None and not ft_api.fine_tuning.jobs


def test_an_export_that_cannot_be_written_fails_the_run_with_the_reason(
    ft_api, version, base_model, manager, run_worker, django_capture_on_commit_callbacks, settings, tmp_path
):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("x")
    settings.RUNS_ROOT = blocker
    run = _launch(_create(version, base_model, manager), manager, run_worker, django_capture_on_commit_callbacks)
    assert run.status == "failed" and run.error_code == "export_failed"
    assert "not-a-folder" in run.error_message
    assert not ft_api.calls


def test_cancel_before_the_worker_starts_sends_nothing(
    ft_api, version, base_model, manager, run_worker, django_capture_on_commit_callbacks
):
    run = _create(version, base_model, manager)
    with django_capture_on_commit_callbacks(execute=True):
        run = training_run_launch(run=run, user=manager)
    run = training_run_cancel(run=run, user=manager)
    assert run.status == "cancelled"
    run_worker("openai")
    run.refresh_from_db()
    assert run.status == "cancelled" and run.job_id is None
    assert not ft_api.calls


def test_the_periodic_job_syncs_every_active_run_and_reschedules_itself(
    ft_api, version, base_model, manager, run_worker, django_capture_on_commit_callbacks
):
    import django_rq
    from rq.registry import ScheduledJobRegistry

    from gestima.periodic import periodic_run

    runs = [
        _launch(
            _create(version, base_model, manager, n_epochs=epochs),
            manager,
            run_worker,
            django_capture_on_commit_callbacks,
        )
        for epochs in (2, 3)
    ]
    periodic_run("sync-runs")
    for run in runs:
        run.refresh_from_db()
        assert run.status == "queued" and run.last_synced_at
    queue = django_rq.get_queue("openai")
    assert "periodic-sync-runs" in ScheduledJobRegistry(queue=queue).get_job_ids()


# --- runs stay consistent under faults ----------------------------------------------------------------


def test_an_identical_active_run_must_be_confirmed_with_a_reason_that_goes_on_the_timeline(
    ft_api, version, base_model, manager, run_worker, django_capture_on_commit_callbacks
):
    first = _launch(
        _create(version, base_model, manager, n_epochs=2), manager, run_worker, django_capture_on_commit_callbacks
    )
    second = _create(version, base_model, manager, n_epochs=2)
    with pytest.raises(TrainingRunError, match=f"run {first.pk} .*already trains the same.*--allow-duplicate"):
        training_run_launch(run=second, user=manager)
    with pytest.raises(TrainingRunError, match="Say why"):
        training_run_launch(run=second, user=manager, allow_duplicate=True)
    second.refresh_from_db()
    assert second.status == "draft" and len(ft_api.calls_to("POST", JOBS)) == 1

    second = _launch(
        second,
        manager,
        run_worker,
        django_capture_on_commit_callbacks,
        allow_duplicate=True,
        duplicate_reason="Second seed-free run to compare variance",
    )
    assert second.job_id and len(ft_api.calls_to("POST", JOBS)) == 2
    note = second.timeline[1]["note"]
    assert f"duplicate of run {first.pk}" in note and "compare variance" in note and manager.username in note
    # Other hyperparameters, or a failed earlier run, are no duplicate.
    assert _create(version, base_model, manager, n_epochs=3) and not training_run_duplicates(
        run=_create(version, base_model, manager, n_epochs=3)
    )


def test_launch_run_command_asks_to_confirm_a_duplicate(
    ft_api, version, base_model, manager, run_worker, django_capture_on_commit_callbacks
):
    import io

    from django.core.management import CommandError, call_command

    _launch(_create(version, base_model, manager), manager, run_worker, django_capture_on_commit_callbacks)
    args = ["launch_run", str(version.pk), base_model.name, "--provider", "openai"]
    with pytest.raises(CommandError, match="already trains the same"):
        call_command(*args, stdout=io.StringIO())
    out = io.StringIO()
    with django_capture_on_commit_callbacks(execute=False):
        call_command(*args, "--allow-duplicate", "--duplicate-reason", "rerun for the audit", stdout=out)
    run = TrainingRun.objects.order_by("-id").first()
    assert run.status == "uploading" and "rerun for the audit" in run.timeline[-1]["note"]
    assert "duplicate" in out.getvalue()


def _second_standin():
    from tests.openai_standin import StandIn
    from tests.openai_standin.fine_tuning import FineTuningAPI

    api = StandIn().__enter__()
    FineTuningAPI().install(api)
    return api


def test_files_are_uploaded_again_for_another_provider_account(
    ft_api, version, base_model, manager, run_worker, django_capture_on_commit_callbacks, settings
):
    _launch(_create(version, base_model, manager, n_epochs=2), manager, run_worker, django_capture_on_commit_callbacks)
    other = _second_standin()  # another base URL (a proxy, another region): its own files
    try:
        settings.OPENAI_BASE_URL = other.base_url
        second = _launch(
            _create(version, base_model, manager, n_epochs=3), manager, run_worker, django_capture_on_commit_callbacks
        )
        assert second.status == "validating_files", second.error_message
        assert other.fine_tuning.jobs[second.job_id]["training_file"] == second.training_file_id
        assert len(other.calls_to("POST", FILES)) == 2  # train + validation, on the new account
    finally:
        other.__exit__(None, None, None)
    rows = UploadedFile.objects.filter(dataset_version=version, split="train")
    assert rows.count() == 2 and len(set(rows.values_list("account", flat=True))) == 2
    assert "sk-test-not-a-real-key" not in str(list(rows.values_list("account", flat=True)))


def test_a_relaunch_after_the_key_changed_uploads_again(
    ft_api, version, base_model, manager, run_worker, django_capture_on_commit_callbacks, settings
):
    ft_api.fine_tuning.fail_jobs_with = ("exceeded_quota", "Quota remaining: $0.10")
    run = _sync_until_done(
        _launch(_create(version, base_model, manager), manager, run_worker, django_capture_on_commit_callbacks)
    )
    assert run.status == "failed"
    ft_api.fine_tuning.fail_jobs_with = None
    other = _second_standin()
    try:
        settings.OPENAI_BASE_URL = other.base_url
        settings.OPENAI_API_KEY = "sk-test-the-new-key"
        again = _launch(
            training_run_relaunch(run=run, user=manager), manager, run_worker, django_capture_on_commit_callbacks
        )
        assert again.status == "validating_files", again.error_message
        assert again.training_file_id in other.fine_tuning.files
        assert other.fine_tuning.jobs[again.job_id]["training_file"] == again.training_file_id
    finally:
        other.__exit__(None, None, None)


def test_a_file_deleted_on_the_provider_is_uploaded_again_not_reused(
    ft_api, version, base_model, manager, run_worker, django_capture_on_commit_callbacks
):
    first = _launch(
        _create(version, base_model, manager, n_epochs=2), manager, run_worker, django_capture_on_commit_callbacks
    )
    ft_api.fine_tuning.delete_file(first.training_file_id)  # retention, or someone tidied the account
    second = _launch(
        _create(version, base_model, manager, n_epochs=3), manager, run_worker, django_capture_on_commit_callbacks
    )
    assert second.status == "validating_files", second.error_message
    assert second.training_file_id != first.training_file_id
    assert second.validation_file_id == first.validation_file_id  # still there: reused
    assert len(ft_api.calls_to("POST", FILES)) == 3
    assert len(ft_api.calls_to("GET", FILES + "/[^/]+")) >= 2  # checked before reuse


def test_a_stale_answer_never_moves_the_status_back(
    ft_api, version, base_model, manager, run_worker, django_capture_on_commit_callbacks
):
    run = _launch(_create(version, base_model, manager), manager, run_worker, django_capture_on_commit_callbacks)
    run = training_run_sync(run=training_run_sync(run=run))
    assert run.status == "running" and run.resolved_hyperparameters["n_epochs"] == 3
    ft_api.fine_tuning.stale_reads = 1  # a lagging replica answers the job as it was at creation
    run = training_run_sync(run=run)
    assert run.status == "running" and run.resolved_hyperparameters["n_epochs"] == 3
    assert [t["status"] for t in run.timeline] == ["draft", "uploading", "validating_files", "queued", "running"]
    assert _sync_until_done(run).status == "succeeded"


@pytest.mark.django_db(transaction=True)
def test_a_late_answer_to_job_creation_does_not_move_the_run_back(ft_api, version, base_model, manager):
    """The worker's create answers slowly; meanwhile the periodic sync adopts the job and sees it running."""
    import threading
    import time as _time

    from django.db import connection as main_connection

    run = _create(version, base_model, manager)
    run = training_run_launch(run=run, user=manager)  # no worker: the start runs in a thread below
    ft_api.fine_tuning.create_delay = 1.5
    done = []

    def worker():
        from django.db import connection as thread_connection

        try:
            done.append(training_run_start(run_id=run.pk).status)
        finally:
            thread_connection.close()

    thread = threading.Thread(target=worker)
    thread.start()
    deadline = _time.monotonic() + 10
    while not ft_api.fine_tuning.jobs and _time.monotonic() < deadline:
        _time.sleep(0.02)
    assert ft_api.fine_tuning.jobs, "the worker never sent the create"
    for _ in range(3):  # reconcile adopts it by metadata, then it moves on to running
        run = training_run_sync(run=run)
    assert run.status == "running"
    thread.join(15)
    run.refresh_from_db()
    assert done and run.status == "running", [t["status"] for t in run.timeline]
    assert [t["status"] for t in run.timeline].count("validating_files") == 1
    main_connection.close()


def _abandon_start_job(run):
    """What RQ does when the worker running the start job was killed: the job's on_failure hook is called
    with AbandonedJobError (no message) when the started-job registry is cleaned up."""
    import django_rq
    from rq.exceptions import AbandonedJobError

    from finetune.jobs import training_run_start_failed

    job = django_rq.get_queue("openai").fetch_job(start_job_id(run.pk))
    assert job is not None
    training_run_start_failed(job, job.connection, AbandonedJobError, AbandonedJobError(), None)


STOPPED_WORDS = (
    "The worker stopped while starting this run (killed or out of memory) 3 times; it was not retried again. "
    "Relaunch to retry; files already uploaded are reused."
)


def _killed_after_uploading(run, ft_api, *, attempts):
    """The worker claimed the run (its `attempts`-th start), uploaded the training file, and was killed sending the
    validation file; RQ then reports the job abandoned."""
    import openai

    sdk = openai.OpenAI(api_key="sk-test", base_url=ft_api.base_url)
    uploaded = sdk.files.create(file=("train.jsonl", b'{"messages": []}\n'), purpose="fine-tune").id
    TrainingRun.objects.filter(pk=run.pk).update(
        worker_claimed_at="2026-01-01T00:00:00Z",
        start_lease_until="2099-01-01T00:00:00Z",  # still held: only RQ's report ends it
        start_attempts=attempts,
        training_file_id=uploaded,
    )
    _abandon_start_job(run)
    return uploaded


def test_a_worker_killed_during_the_upload_is_started_again_and_reuses_the_uploaded_file(
    ft_api, version, base_model, manager, run_worker, django_capture_on_commit_callbacks
):
    from gestima.recovery import abandoned_jobs_recover

    run = _create(version, base_model, manager)
    with django_capture_on_commit_callbacks(execute=True):
        run = training_run_launch(run=run, user=manager)
    uploaded = _killed_after_uploading(run, ft_api, attempts=1)
    run.refresh_from_db()
    assert run.status == "uploading" and run.error_code == ""  # not failed: the recovery retries it

    with django_capture_on_commit_callbacks(execute=True):
        assert abandoned_jobs_recover()["run_starts"]["queued"] == [run.pk]
    run_worker("openai")
    run.refresh_from_db()
    assert run.status == "validating_files" and run.job_id and run.start_attempts == 2
    assert run.training_file_id == uploaded  # reused, not sent again
    assert len(ft_api.calls_to("POST", FILES)) == 2  # the dead worker's one, then only the validation file
    assert len(ft_api.calls_to("POST", JOBS)) == 1
    assert any("started again" in t.get("note", "") for t in run.timeline)


def test_a_worker_killed_on_every_start_fails_the_run_in_words_and_records_the_orphaned_file(
    ft_api, version, base_model, manager, run_worker, django_capture_on_commit_callbacks, client
):
    from gestima.recovery import abandoned_jobs_recover

    run = _create(version, base_model, manager)
    with django_capture_on_commit_callbacks(execute=True):
        run = training_run_launch(run=run, user=manager)
    uploaded = _killed_after_uploading(run, ft_api, attempts=3)
    assert abandoned_jobs_recover()["run_starts"]["failed"] == [run.pk]
    run.refresh_from_db()
    assert run.status == "failed" and run.error_code == "worker_stopped"
    assert run.error_message == STOPPED_WORDS
    assert run.orphaned_files == [{"split": "train", "file_id": uploaded}]
    assert abandoned_jobs_recover()["run_starts"] == {"queued": [], "failed": [], "adopted": []}
    client.force_login(manager)
    page = client.get(f"/admin/finetune/trainingrun/{run.pk}/change/").content.decode()
    assert "The worker stopped while starting this run" in page and uploaded in page

    again = _launch(
        training_run_relaunch(run=run, user=manager), manager, run_worker, django_capture_on_commit_callbacks
    )
    assert again.job_id and again.training_file_id == uploaded  # reused, not sent again
    assert len(ft_api.calls_to("POST", FILES)) == 2  # the dead worker's one, then only the validation file


def test_an_adopted_run_that_succeeds_loses_the_stale_worker_error(
    ft_api, version, base_model, manager, run_worker, django_capture_on_commit_callbacks
):
    import io

    import openai
    from django.core.management import call_command

    from gestima.recovery import abandoned_jobs_recover
    from tests.openai_standin.base import Response

    run = _create(version, base_model, manager)
    with django_capture_on_commit_callbacks(execute=True):
        run = training_run_launch(run=run, user=manager)
    # The worker made the job and was killed before saving its id; the jobs list does not show it yet.
    sdk = openai.OpenAI(api_key="sk-test", base_url=ft_api.base_url)
    file_id = sdk.files.create(file=("train.jsonl", b'{"messages": []}\n'), purpose="fine-tune").id
    remote = sdk.fine_tuning.jobs.create(model=base_model.name, training_file=file_id, metadata=run.metadata)
    TrainingRun.objects.filter(pk=run.pk).update(
        training_file_id=file_id, worker_claimed_at="2026-01-01T00:00:00Z", start_attempts=3
    )
    ft_api.script("GET", JOBS, Response(200, {"object": "list", "data": [], "has_more": False}))
    _abandon_start_job(run)
    abandoned_jobs_recover()  # its last start died too, and the lookup misses the job
    run.refresh_from_db()
    assert run.status == "failed" and run.error_message == STOPPED_WORDS
    assert run.orphaned_files == [{"split": "train", "file_id": file_id}]

    call_command("ft_doctor", "--fix", stdout=io.StringIO())
    run.refresh_from_db()
    assert run.job_id == remote.id and run.status == "validating_files"
    assert any("had been marked failed" in t.get("note", "") for t in run.timeline)
    run = _sync_until_done(run)
    assert run.status == "succeeded"
    assert (run.error_code, run.error_message) == ("", "")
    assert run.orphaned_files == []  # the job uses it now


def test_resolved_hyperparameters_and_estimated_finish_are_stored_and_shown(
    ft_api, version, base_model, manager, run_worker, django_capture_on_commit_callbacks, client
):
    run = _launch(
        _create(version, base_model, manager, batch_size=4), manager, run_worker, django_capture_on_commit_callbacks
    )
    assert run.resolved_hyperparameters == {"batch_size": 4}
    run = training_run_sync(run=training_run_sync(run=run))
    assert run.status == "running"
    assert run.resolved_hyperparameters == {"n_epochs": 3, "batch_size": 4, "learning_rate_multiplier": 1.8}
    assert run.estimated_finish_at is not None
    client.force_login(manager)
    page = client.get(f"/admin/finetune/trainingrun/{run.pk}/change/").content.decode()
    assert "n_epochs auto → 3" in page and "learning_rate_multiplier auto → 1.8" in page
    assert "Estimated finish" in page


def _flagged(version):
    from curation.models import Example

    return {
        e.pk: e.provider_refused_reason
        for e in Example.objects.filter(memberships__version=version, provider_refused=True)
    }


def test_examples_the_provider_skips_are_linked_flagged_and_left_out_of_the_next_build(
    ft_api, version, base_model, manager, run_worker, django_capture_on_commit_callbacks, client
):
    from curation.services.datasets import dataset_build

    ft_api.fine_tuning.refuse_lines = {
        "train": {3: "its image failed content moderation", 7: "its image failed content moderation"},
        "validation": {2: "its image could not be processed"},
    }
    run = _sync_until_done(
        _launch(_create(version, base_model, manager), manager, run_worker, django_capture_on_commit_callbacks)
    )
    assert run.status == "succeeded"
    train = list(version.members.filter(split="train").order_by("position"))
    valid = list(version.members.filter(split="validation").order_by("position"))
    expected = {train[2].example_id, train[6].example_id, valid[1].example_id}
    assert {r["example_id"] for r in run.provider_refusals} == expected
    assert {(r["split"], r["line"], r["member_id"]) for r in run.provider_refusals} == {
        ("train", 3, train[2].pk),
        ("train", 7, train[6].pk),
        ("validation", 2, valid[1].pk),
    }
    flagged = _flagged(version)
    assert set(flagged) == expected
    assert f"Run {run.pk}" in flagged[train[2].example_id] and "content moderation" in flagged[train[2].example_id]

    client.force_login(manager)
    review = client.get(f"/admin/curation/example/{train[2].example_id}/review/").content.decode()
    assert "Refused by the provider" in review and "content moderation" in review
    version_page = client.get(f"/admin/curation/datasetversion/{version.pk}/change/").content.decode()
    assert "3 example(s) dropped or refused by the provider" in version_page
    run_page = client.get(f"/admin/finetune/trainingrun/{run.pk}/change/").content.decode()
    assert "train line 3" in run_page

    rebuilt = dataset_build(dataset=version.dataset, user=manager)
    assert not expected & set(rebuilt.members.values_list("example_id", flat=True))
    assert rebuilt.members.count() == version.members.count() - 3


def test_a_summary_warning_and_an_invalid_file_error_are_tied_to_their_lines(
    ft_api, version, base_model, manager, run_worker, django_capture_on_commit_callbacks
):
    ft_api.fine_tuning.refusal_style = "summary"
    ft_api.fine_tuning.refuse_lines = {
        "train": {2: "their images failed content moderation", 5: "their images failed content moderation"}
    }
    run = _sync_until_done(
        _launch(
            _create(version, base_model, manager, n_epochs=2), manager, run_worker, django_capture_on_commit_callbacks
        )
    )
    train = list(version.members.filter(split="train").order_by("position"))
    assert {r["member_id"] for r in run.provider_refusals} == {train[1].pk, train[4].pk}

    ft_api.fine_tuning.refuse_lines = {}
    ft_api.fine_tuning.fail_jobs_with = (
        "invalid_training_file",
        "The job failed due to an invalid training file. "
        "Invalid file format. Line 9, message 2: Unrecognized key 'contents'.",
    )
    failed = _sync_until_done(
        _launch(
            _create(version, base_model, manager, n_epochs=3), manager, run_worker, django_capture_on_commit_callbacks
        )
    )
    assert failed.status == "failed"
    assert [(r["split"], r["line"], r["member_id"]) for r in failed.provider_refusals] == [("train", 9, train[8].pk)]
    assert train[8].example_id in _flagged(version)
