"""`build_dataset` and `import_production_times` go through the worker as the admin does: the same row, the same
job, progress lines until it ends; --sync runs here, --no-wait prints the id; exit 0 done, 1 failed, 2 bad arguments.
"""

import django_rq
import pytest
from django.core.management import CommandError, call_command

from curation.models import DatasetBuild, DatasetVersion, ProductionImport, ProductionRecord
from curation.services.base_models import base_models_seed
from tests.curation.test_datasets import approved_examples, make_dataset
from tests.curation.test_production import HEADER

pytestmark = pytest.mark.django_db

CSV = HEADER + "R-1,O1,DMU 50,milling,10,1.5,20,\n" + "R-2,O2,DMU 50,milling,ten,1.5,20,\n"


@pytest.fixture
def worker_while_waiting(monkeypatch, run_worker, transactional_db):
    """The command's wait between polls runs a real burst worker: the job runs while the command follows its row.
    (Real commits: the job is sent when the request's transaction commits, as in production.)"""
    import gestima.work_commands

    pauses = []

    def pause():
        pauses.append(1)
        assert len(pauses) < 10, "the command kept waiting"
        run_worker("default")

    monkeypatch.setattr(gestima.work_commands, "_pause", pause)


@pytest.fixture
def redis_down(settings):
    settings.RQ_QUEUES = {name: {**conf, "URL": "redis://127.0.0.1:1/0"} for name, conf in settings.RQ_QUEUES.items()}


def test_build_dataset_queues_the_admins_build_and_follows_it_to_the_end(worker_while_waiting, capsys):
    base_models_seed()
    approved_examples(10)
    make_dataset(name="ten")
    call_command("build_dataset", "ten")
    out = capsys.readouterr().out
    build = DatasetBuild.objects.get()
    assert build.status == "done" and build.version == DatasetVersion.objects.get()
    assert f"Build #{build.pk} of ten queued" in out
    assert f"Build #{build.pk} of ten: Queued (waiting for a worker)" in out
    assert f"Build #{build.pk} of ten: Done: 20 / 20" in out  # done/total: two passes over ten examples
    assert "ten v1 built" in out and "gpt-4o-2024-08-06" in out  # the gates, tokens and cost as before


def test_build_dataset_no_wait_prints_the_id_of_the_queued_build(django_capture_on_commit_callbacks, capsys):
    approved_examples(10)
    make_dataset(name="ten")
    with django_capture_on_commit_callbacks(execute=True):
        call_command("build_dataset", "ten", "--no-wait")
    build = DatasetBuild.objects.get()
    assert capsys.readouterr().out.strip() == str(build.pk) and build.status == "queued"
    assert django_rq.get_queue("default").job_ids == [f"dataset-build-{build.pk}"]
    with django_capture_on_commit_callbacks(execute=True):  # the same again: that build, not a second
        call_command("build_dataset", "ten", "--no-wait")
    assert capsys.readouterr().out.strip() == str(build.pk) and DatasetBuild.objects.count() == 1


def test_a_failed_build_exits_1_with_the_rows_error_and_a_missing_dataset_exits_2(worker_while_waiting, capsys):
    make_dataset(name="empty")
    with pytest.raises(CommandError, match=r"^Build #\d+ of empty failed: .*approve examples first") as failed:
        call_command("build_dataset", "empty")
    assert failed.value.returncode == 1 and DatasetBuild.objects.get().status == "failed"
    with pytest.raises(CommandError, match="No dataset with id or name 'nope'") as bad:
        call_command("build_dataset", "nope")
    assert bad.value.returncode == 2
    with pytest.raises(CommandError) as sync_failed:
        call_command("build_dataset", "empty", "--sync")
    assert sync_failed.value.returncode == 1 and DatasetBuild.objects.filter(status="failed").count() == 2


def test_with_redis_down_the_command_says_so_and_suggests_sync_and_sync_works(redis_down, capsys):
    approved_examples(10)
    make_dataset(name="ten")
    with pytest.raises(CommandError) as down:
        call_command("build_dataset", "ten")
    message = str(down.value)
    assert message.startswith("The job queue is unavailable (Redis:") and "--sync" in message
    assert down.value.returncode == 1 and not DatasetBuild.objects.exists()  # nothing recorded

    call_command("build_dataset", "ten", "--sync")
    build = DatasetBuild.objects.get()
    assert build.status == "done" and build.version is not None
    assert f"Build #{build.pk} of ten: running in this process (--sync)" in capsys.readouterr().out


def test_import_production_times_goes_through_the_worker_and_lists_bad_lines(worker_while_waiting, tmp_path, capsys):
    path = tmp_path / "shop.csv"
    path.write_text(CSV)
    call_command("import_production_times", str(path))
    out = capsys.readouterr().out
    row = ProductionImport.objects.get()
    assert row.status == "done" and row.source_name == "shop.csv" and not row.file  # the stored copy is deleted
    assert f"Import #{row.pk} of shop.csv queued" in out and f"Import #{row.pk} of shop.csv: Done" in out
    assert "line 3: pieces is not a positive integer" in out and "shop.csv: 2 rows: 1 created" in out
    assert ProductionRecord.objects.count() == 1


def test_import_no_wait_sync_and_bad_arguments(django_capture_on_commit_callbacks, tmp_path, capsys, redis_down):
    path = tmp_path / "shop.csv"
    path.write_text(CSV)
    with pytest.raises(CommandError, match="No such file") as bad:
        call_command("import_production_times", str(tmp_path / "nope.csv"))
    assert bad.value.returncode == 2
    with pytest.raises(CommandError, match=r"Redis.*--sync") as down:
        call_command("import_production_times", str(path), "--no-wait")
    assert down.value.returncode == 1 and not ProductionImport.objects.exists()

    call_command("import_production_times", str(path), "--sync")
    row = ProductionImport.objects.get()
    assert row.status == "done" and "line 3: pieces is not a positive integer" in capsys.readouterr().out

    path.write_text("not,a,production,csv\n")
    with pytest.raises(CommandError, match=r"^Import #\d+ of shop.csv failed: ") as failed:
        call_command("import_production_times", str(path), "--sync")
    assert failed.value.returncode == 1


def test_import_no_wait_prints_the_id_and_leaves_the_job_queued(django_capture_on_commit_callbacks, tmp_path, capsys):
    path = tmp_path / "shop.csv"
    path.write_text(CSV)
    with django_capture_on_commit_callbacks(execute=True):
        call_command("import_production_times", str(path), "--no-wait")
    row = ProductionImport.objects.get()
    assert capsys.readouterr().out.strip() == str(row.pk) and row.status == "queued"
    assert django_rq.get_queue("default").job_ids == [f"production-import-{row.pk}"]


def test_sync_work_that_crashes_before_it_records_its_outcome_exits_1_with_the_reason(capsys):
    """--sync has no worker and no recovery: a crash the job body did not store still ends the row, never a wait."""
    from django.core.management.base import BaseCommand

    from curation.services.dataset_builds import BUILD, dataset_build_request
    from gestima.work_commands import work_command_run

    approved_examples(10)
    dataset = make_dataset()

    def crash(pk):
        raise OSError("disk full")

    with pytest.raises(CommandError, match="disk full") as refused:
        work_command_run(
            BaseCommand(),
            kind=BUILD,
            label=lambda pk: f"build {pk}",
            request=lambda queue: dataset_build_request(dataset=dataset, queue=queue),
            run=crash,
            options={"sync": True},
        )
    assert refused.value.returncode == 1
    build = DatasetBuild.objects.get()
    assert build.status == "failed" and "OSError: disk full" in build.error
