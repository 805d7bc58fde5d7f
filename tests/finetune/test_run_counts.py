"""The run page's progress: files uploaded of those it sends, then steps of the total, as text and bar, in the
live JSON the page polls and on the page itself; no bar when the total cannot be known."""

import datetime
import re

import pytest
from django.urls import reverse
from django.utils import timezone

from finetune.models import RunEvent, RunMetric, TrainingRun
from tests.factories import make_base_model, make_dataset_version

pytestmark = pytest.mark.django_db


def _run(status, *, n_train=20, **fields):
    run = TrainingRun.objects.create(
        dataset_version=make_dataset_version(n_train=n_train, n_validation=2),
        base_model=make_base_model(),
        provider="openai",
        status=status,
        **fields,
    )
    return run


def _live(client, run) -> dict:
    return client.get(reverse("admin:finetune_trainingrun_live", args=[run.pk])).json()


def _page_bar(client, run) -> str | None:
    """The width of the progress bar on the run page, or None when the page draws none."""
    html = client.get(reverse("admin:finetune_trainingrun_change", args=[run.pk])).content.decode()
    match = re.search(r'data-live-bar="progress" style="display:block;width:(\d+)%', html)
    return match and match.group(1)


def test_uploading_shows_files_done_of_files_to_send(client, manager):
    client.force_login(manager)
    run = _run("uploading", training_file_id="file-train-1")
    state = _live(client, run)
    assert state["fields"]["progress"] == "Uploading: 1 / 2 files (train done, validation pending)"
    assert state["bars"] == {"progress": 50}
    assert _page_bar(client, run) == "50"
    TrainingRun.objects.filter(pk=run.pk).update(validation_file_id="file-valid-1")
    assert _live(client, run)["bars"] == {"progress": 100}


def test_running_shows_step_of_the_total_computed_from_the_resolved_hyperparameters(client, manager):
    client.force_login(manager)
    # 3 epochs × ceil(20 train examples / batch 1) = 60 steps.
    run = _run("running", job_id="ftjob-30", resolved_hyperparameters={"n_epochs": 3, "batch_size": 1})
    RunMetric.objects.create(run=run, step=30, train_loss=0.5)
    state = _live(client, run)
    assert state["fields"]["progress"] == "step 30 / 60 (50%), train loss 0.5"
    assert state["bars"] == {"progress": 50}
    assert _page_bar(client, run) == "50"

    TrainingRun.objects.filter(pk=run.pk).update(
        resolved_hyperparameters={"n_epochs": 3, "batch_size": 4},
        estimated_finish_at=datetime.datetime(2026, 5, 4, 14, 5, tzinfo=datetime.UTC),
    )
    progress = _live(client, run)["fields"]["progress"]  # 3 × ceil(20 / 4) = 15 < step 30: not a figure to show
    assert progress.startswith("step 30 (total unknown), train loss 0.5; estimated finish 2026-05-04 ")


def test_the_total_the_provider_reports_wins_over_the_computed_one(client, manager):
    client.force_login(manager)
    run = _run("running", job_id="ftjob-80", resolved_hyperparameters={"n_epochs": 3, "batch_size": 1})
    RunMetric.objects.create(run=run, step=20, train_loss=0.9)
    RunEvent.objects.create(
        run=run,
        remote_id="ftevent-80",
        created_at_remote=timezone.now(),
        type="metrics",
        message="Step 20/80",
        data={"step": 20, "train_loss": 0.9, "total_steps": 80},
    )
    state = _live(client, run)
    assert state["fields"]["progress"] == "step 20 / 80 (25%), train loss 0.9"
    assert state["bars"] == {"progress": 25}


def test_an_unknown_total_shows_the_step_and_no_bar(client, manager):
    client.force_login(manager)
    run = _run("running", job_id="ftjob-auto")  # batch size "auto", nothing resolved, no total reported
    RunMetric.objects.create(run=run, step=30, train_loss=0.5)
    state = _live(client, run)
    assert state["fields"]["progress"] == "step 30 (total unknown), train loss 0.5"
    assert state["bars"] == {}
    assert _page_bar(client, run) is None


def test_a_succeeded_run_shows_a_full_bar_and_does_not_poll(client, manager):
    client.force_login(manager)
    run = _run("succeeded", job_id="ftjob-done", resolved_hyperparameters={"n_epochs": 3, "batch_size": 1})
    RunMetric.objects.create(run=run, step=60, train_loss=0.1)
    state = _live(client, run)
    assert state["active"] is False and state["bars"] == {"progress": 100}
    assert state["fields"]["progress"] == "finished: 60 steps, train loss 0.1"
    html = client.get(reverse("admin:finetune_trainingrun_change", args=[run.pk])).content.decode()
    assert "data-live-url" not in html and _page_bar(client, run) == "100"
