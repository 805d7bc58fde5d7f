"""ft_doctor and the run commands (launch_run, sync_runs) against the stand-in API."""

import io

import openai
import pytest
from django.core.management import CommandError, call_command

from finetune.models import TrainingRun
from finetune.services.run_launch import training_run_create, training_run_launch
from tests.factories import make_dataset_version

pytestmark = pytest.mark.django_db


def _call(*args):
    out = io.StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


def _doctor_with_problems(*args, problems: str):
    """ft_doctor's report when it finds problems: it fails (exit 1) with "N problem(s)" as its last line."""
    out = io.StringIO()
    with pytest.raises(CommandError, match=rf"^{problems} problem\(s\)"):
        call_command("ft_doctor", *args, stdout=out)
    return out.getvalue()


def _launched(version, base_model, manager, run_worker, capture):
    run = training_run_create(dataset_version=version, base_model=base_model, user=manager, provider="openai")
    with capture(execute=True):
        run = training_run_launch(run=run, user=manager)
    run_worker("openai")
    run.refresh_from_db()
    return run


def test_doctor_reports_orphans_gone_jobs_and_mismatches_and_fix_adopts_ours(
    ft_api, version, base_model, manager, run_worker, django_capture_on_commit_callbacks
):
    healthy = _launched(version, base_model, manager, run_worker, django_capture_on_commit_callbacks)
    ft_api.fine_tuning.jobs[healthy.job_id]["status"] = "running"  # moved on since our last sync

    lost = training_run_create(dataset_version=version, base_model=base_model, user=manager, provider="openai")
    with django_capture_on_commit_callbacks(execute=False):
        # its worker made the job, then died (a second run of the same settings, confirmed)
        lost = training_run_launch(run=lost, user=manager, allow_duplicate=True, duplicate_reason="test of the doctor")
    client = openai.OpenAI(api_key="sk-test", base_url=ft_api.base_url)
    lost_job = client.fine_tuning.jobs.create(
        model=base_model.name, training_file=healthy.training_file_id, metadata=lost.metadata
    )
    foreign = client.fine_tuning.jobs.create(model=base_model.name, training_file=healthy.training_file_id)
    gone = training_run_create(dataset_version=version, base_model=base_model, user=manager, provider="openai")
    TrainingRun.objects.filter(pk=gone.pk).update(job_id="ftjob-deleted", status="running")

    report = _doctor_with_problems(problems=4)
    assert f"ORPHAN {lost_job.id}" in report and f"carries run id {lost.pk}" in report
    assert f"ORPHAN {foreign.id}" in report and "no run id" in report
    assert f"GONE run {gone.pk}" in report
    assert f"MISMATCH run {healthy.pk}: ours validating_files, provider running" in report
    lost.refresh_from_db()
    assert lost.job_id is None  # nothing changed without --fix

    jobs_before = len(ft_api.calls_to("POST", "/fine_tuning/jobs"))
    report = _doctor_with_problems("--fix", problems=3)  # the foreign orphan, the gone run, the mismatch
    assert f"ADOPTED {lost_job.id} into run {lost.pk}" in report
    assert f"ORPHAN {foreign.id}" in report
    lost.refresh_from_db()
    assert lost.job_id == lost_job.id
    assert len(ft_api.calls_to("POST", "/fine_tuning/jobs")) == jobs_before


def test_doctor_flags_a_second_job_for_a_run(
    ft_api, version, base_model, manager, run_worker, django_capture_on_commit_callbacks
):
    run = _launched(version, base_model, manager, run_worker, django_capture_on_commit_callbacks)
    client = openai.OpenAI(api_key="sk-test", base_url=ft_api.base_url)
    duplicate = client.fine_tuning.jobs.create(
        model=base_model.name, training_file=run.training_file_id, metadata=run.metadata
    )
    report = _doctor_with_problems("--fix", problems=1)
    assert f"ORPHAN {duplicate.id}" in report and f"a second job for run {run.pk}" in report
    run.refresh_from_db()
    assert run.job_id != duplicate.id


def test_doctor_exits_0_with_no_problems_only(
    ft_api, version, base_model, manager, run_worker, django_capture_on_commit_callbacks
):
    run = _launched(version, base_model, manager, run_worker, django_capture_on_commit_callbacks)
    report = _call("ft_doctor")
    assert f"{run.job_id}" in report and report.splitlines()[-1] == "no problems"
    ft_api.fine_tuning.jobs[run.job_id]["status"] = "running"
    report = _doctor_with_problems(problems=1)
    assert f"MISMATCH run {run.pk}" in report


def test_launch_run_and_sync_runs_commands(ft_api, version, base_model, run_worker, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        out = _call(
            "launch_run",
            f"{version.dataset.name}:v{version.number}",
            base_model.name,
            "--provider",
            "openai",
            "--n-epochs",
            "2",
            "--budget",
            "10",
        )
    assert "estimated 20000 billed tokens, $0.0600 (budget $10.00)" in out and "launched (openai)" in out
    run_worker("openai")
    run = TrainingRun.objects.get()
    for _ in range(5):
        out = _call("sync_runs")
        if "succeeded" in out:
            break
    run.refresh_from_db()
    assert run.status == "succeeded"
    assert f"run {run.pk}: succeeded job {run.job_id} model {run.fine_tuned_model}" in out
    assert "run(s) synced" in _call("sync_runs", str(run.pk))


def test_launch_run_refuses_over_budget_or_failing_gates_without_a_reason(ft_api, base_model):
    failing = make_dataset_version(gates_passed=False, n_train=4)
    with pytest.raises(CommandError, match="dataset gates fail: only 4 rows"):
        _call("launch_run", str(failing.pk), base_model.name, "--provider", "openai")
    with pytest.raises(CommandError, match="over the budget"):
        _call(
            "launch_run", str(make_dataset_version().pk), base_model.name, "--provider", "openai", "--budget", "0.001"
        )
    assert not TrainingRun.objects.exclude(status="draft").exists()
    assert not ft_api.calls_to("POST", "/fine_tuning/jobs")


def test_launch_run_takes_the_version_as_every_command_does(ft_api, base_model):
    version = make_dataset_version(name="plates")
    _call("launch_run", "plates@1", base_model.name, "--provider", "dryrun")
    _call("launch_run", str(version.pk), base_model.name, "--provider", "dryrun")
    assert TrainingRun.objects.filter(dataset_version=version).count() == 2
    with pytest.raises(
        CommandError,
        match=r"No dataset version 'plates:v2': give NAME:vN .*, NAME@N or the version id\. "
        rf"Versions of 'plates': plates:v1 \(id {version.pk}\)\.",
    ):
        _call("launch_run", "plates:v2", base_model.name, "--provider", "dryrun")
    with pytest.raises(CommandError, match=rf"No base model 'gpt-9': give one of .*{base_model.name}"):
        _call("launch_run", "plates:v1", "gpt-9", "--provider", "dryrun")
