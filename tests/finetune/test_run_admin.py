"""The training-run admin: confirmation page, per-action permissions on the server, the run page."""

import datetime
from decimal import Decimal

import pytest
from django.contrib.auth.models import Permission
from django.urls import reverse

from finetune.models import TrainingRun
from finetune.services.run_launch import training_run_create
from tests.factories import make_base_model, make_user

pytestmark = pytest.mark.django_db


def _url(name, run):
    return reverse(f"admin:finetune_trainingrun_{name}", args=[run.pk])


def test_launch_page_shows_gates_cost_against_budget_and_the_shutdown_warning(client, manager, version):
    gpt4o = make_base_model(
        "gpt-4o-2024-08-06",
        price="25.00",
        jobs_end_date=datetime.date(2027, 1, 6),
        shutdown_date=datetime.date(2027, 1, 14),
    )
    run = training_run_create(
        dataset_version=version,
        base_model=gpt4o,
        user=manager,
        provider="dryrun",
        n_epochs=3,
        budget_usd=Decimal("0.50"),
    )
    client.force_login(manager)
    page = client.get(_url("launch", run)).content.decode()
    assert "$0.75" in page and "$0.50" in page and "over budget" in page  # 10k tokens x 3 epochs x $25/1M
    assert "2027-01-06" in page and "2027-01-14" in page
    assert "no new fine-tuning jobs after 2027-01-06" in page  # the warning, not only the date
    assert "min_rows" in page and 'name="override_reason"' in page


def test_launch_refused_over_budget_without_override_then_recorded_with_it(
    client, manager, version, base_model, settings
):
    run = training_run_create(
        dataset_version=version, base_model=base_model, user=manager, provider="dryrun", budget_usd=Decimal("0.01")
    )
    client.force_login(manager)
    response = client.post(_url("launch", run), follow=True)
    assert "Launch refused" in response.content.decode()
    run.refresh_from_db()
    assert run.status == "draft"
    client.post(_url("launch", run), {"override": "1", "override_reason": "Approved by the plant manager"})
    run.refresh_from_db()
    assert run.status != "draft" and run.override and run.override_by == manager
    assert "Approved by the plant manager" in run.override_reason


def test_reviewer_and_view_only_staff_cannot_launch_cancel_or_relaunch(client, reviewer, version, base_model):
    run = training_run_create(dataset_version=version, base_model=base_model, user=None, provider="dryrun")
    viewer = make_user(None)
    viewer.user_permissions.add(Permission.objects.get(codename="view_trainingrun"))
    for user in (reviewer, viewer):
        client.force_login(user)
        for name in ("launch", "cancel", "relaunch"):
            assert client.post(_url(name, run), {"override": "1", "override_reason": "x"}).status_code == 403
    run.refresh_from_db()
    assert run.status == "draft"
    assert TrainingRun.objects.count() == 1
    # The view-only user sees the run page but not the buttons.
    page = client.get(_url("change", run)).content.decode()
    assert "Launch…</a>" not in page and "Relaunch (reuse files)" not in page and "Yes, launch" not in page


def test_double_post_of_the_launch_makes_one_job(
    client, manager, version, base_model, ft_api, run_worker, django_capture_on_commit_callbacks
):
    run = training_run_create(dataset_version=version, base_model=base_model, user=manager, provider="openai")
    client.force_login(manager)
    with django_capture_on_commit_callbacks(execute=True):
        client.post(_url("launch", run))
    with django_capture_on_commit_callbacks(execute=True):
        second = client.post(_url("launch", run), follow=True)
    assert "already launched" in second.content.decode()
    run_worker("openai")
    run_worker("openai")
    assert len(ft_api.calls_to("POST", "/fine_tuning/jobs")) == 1


def test_run_page_shows_timeline_events_loss_curve_checkpoints_tokens_and_cost(
    client, manager, version, base_model, ft_api, run_worker, django_capture_on_commit_callbacks
):
    run = training_run_create(dataset_version=version, base_model=base_model, user=manager, provider="openai")
    client.force_login(manager)
    with django_capture_on_commit_callbacks(execute=True):
        client.post(_url("launch", run))
    run_worker("openai")
    for _ in range(4):
        client.post(_url("sync", run))  # "Sync now"
    run.refresh_from_db()
    assert run.status == "succeeded"
    page = client.get(_url("change", run)).content.decode()
    for text in (
        "validating_files",
        "running",
        "succeeded",
        "Step 6/6",
        'id="run-loss-chart"',
        "valid loss",
        "ckpt-step-6",
        "123456",
        "$0.37",
        run.fine_tuned_model,
        "Relaunch",
    ):
        assert text in page, text


def test_cancel_and_relaunch_buttons(
    client, manager, version, base_model, ft_api, run_worker, django_capture_on_commit_callbacks
):
    run = training_run_create(dataset_version=version, base_model=base_model, user=manager, provider="openai")
    client.force_login(manager)
    with django_capture_on_commit_callbacks(execute=True):
        client.post(_url("launch", run))
    run_worker("openai")
    assert "Yes, cancel" in client.get(_url("cancel", run)).content.decode()
    client.post(_url("cancel", run))
    run.refresh_from_db()
    assert run.status == "cancelled"
    assert ft_api.fine_tuning.jobs[run.job_id]["status"] == "cancelled"
    response = client.post(_url("relaunch", run))
    new = TrainingRun.objects.get(relaunched_from=run)
    assert response.url == _url("launch", new)
    assert new.status == "draft" and new.training_file_id == run.training_file_id


def test_add_form_shows_shutdown_dates_and_leads_to_the_confirmation(client, manager, version, base_model):
    make_base_model("gpt-4o-2024-08-06", price="25.00", shutdown_date=datetime.date(2027, 1, 14))
    client.force_login(manager)
    page = client.get(reverse("admin:finetune_trainingrun_add")).content.decode()
    assert "shutdown 2027-01-14" in page and "no new jobs after 2027-01-06" in page
    response = client.post(
        reverse("admin:finetune_trainingrun_add"),
        {
            "dataset_version": version.pk,
            "base_model": base_model.pk,
            "provider": "dryrun",
            "n_epochs": "2",
            "batch_size": "auto",
            "learning_rate_multiplier": "auto",
            "suffix": "x",
            "budget_usd": "5",
        },
    )
    run = TrainingRun.objects.get()
    assert response.url == _url("launch", run)
    assert run.n_epochs == "2" and run.estimated_cost_usd == Decimal("0.0600") and run.created_by == manager
    bad = client.post(
        reverse("admin:finetune_trainingrun_add"),
        {
            "dataset_version": version.pk,
            "base_model": base_model.pk,
            "provider": "dryrun",
            "n_epochs": "500",
            "batch_size": "auto",
            "learning_rate_multiplier": "auto",
        },
    )
    assert "n_epochs must be between" in bad.content.decode()


def test_a_duplicate_launch_needs_the_checkbox_and_a_reason_on_the_confirmation_page(
    client, manager, version, base_model, ft_api, run_worker, django_capture_on_commit_callbacks
):
    first = training_run_create(dataset_version=version, base_model=base_model, user=manager, provider="openai")
    TrainingRun.objects.filter(pk=first.pk).update(status="running", job_id="ftjob-elsewhere")
    run = training_run_create(dataset_version=version, base_model=base_model, user=manager, provider="openai")
    client.force_login(manager)
    page = client.get(_url("launch", run)).content.decode()
    assert "Already training the same thing" in page and f"Run {first.pk}</a> — Running" in page
    assert 'name="allow_duplicate"' in page and 'name="duplicate_reason"' in page

    response = client.post(_url("launch", run), follow=True)
    assert "already trains the same dataset version" in response.content.decode()
    response = client.post(_url("launch", run), {"allow_duplicate": "1"}, follow=True)
    assert "Say why" in response.content.decode()
    run.refresh_from_db()
    assert run.status == "draft"

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            _url("launch", run),
            {"allow_duplicate": "1", "duplicate_reason": "New prompt wording in production"},
            follow=True,
        )
    run.refresh_from_db()
    assert run.status == "uploading"
    page = response.content.decode()
    assert f"confirmed duplicate of run {first.pk}" in page and "New prompt wording in production" in page
