"""Evaluate a succeeded training run in one click (base and fine-tuned model on its validation split); the
lineage (training run, dataset version + hash, base model, hyperparameters, checkpoint) is filled in and
shown on the eval run page and in the model card."""

import json
import re
from io import StringIO

import pytest
from django.contrib.auth.models import Permission
from django.core.management import call_command
from django.urls import reverse

from finetune.models import EvalRun, RunCheckpoint, TrainingRun
from finetune.services.promotion import model_version_promote
from tests.factories import make_user
from tests.finetune.evalkit import (
    FT_MODEL,
    MODEL,
    make_plan_dataset_version,
    make_priced_base_model,
    targets_by_part,
    use_standin,
)
from tests.openai_standin import StandIn
from tests.openai_standin.chat import install_chat, part_number

pytestmark = pytest.mark.django_db


@pytest.fixture
def manager(roles):
    return make_user("Manager")


@pytest.fixture
def version():
    return make_plan_dataset_version(n_validation=3, n_train=2)


@pytest.fixture
def succeeded_run(version):
    return TrainingRun.objects.create(
        dataset_version=version,
        base_model=make_priced_base_model(),
        provider="openai",
        n_epochs="3",
        learning_rate_multiplier="0.5",
        status="succeeded",
        job_id="ftjob-lineage",
        fine_tuned_model=FT_MODEL,
    )


def _answer_with_targets(version):
    targets = targets_by_part(version)
    return lambda body: json.dumps(targets[part_number(body)])


def test_evaluate_on_the_run_page_makes_two_linked_eval_runs_once(
    client, settings, manager, version, succeeded_run, run_worker, django_capture_on_commit_callbacks
):
    client.force_login(manager)
    page = client.get(reverse("admin:finetune_trainingrun_change", args=[succeeded_run.pk])).content.decode()
    assert "Evaluate (base vs fine-tuned)" in page
    url = reverse("admin:finetune_trainingrun_evaluate", args=[succeeded_run.pk])
    with StandIn() as api:
        install_chat(api, _answer_with_targets(version))
        use_standin(settings, api)
        with django_capture_on_commit_callbacks(execute=True):
            response = client.post(url)
        assert response.status_code == 302 and f"training_run__id__exact={succeeded_run.pk}" in response["Location"]
        run_worker("openai")
        # A second click reuses the pair: nothing is asked (or paid) twice.
        with django_capture_on_commit_callbacks(execute=True):
            again = client.post(url, follow=True)
        assert "already evaluated" in again.content.decode()
        run_worker("openai")

    runs = list(EvalRun.objects.order_by("pk"))
    assert [(r.model_name, r.model_kind) for r in runs] == [(MODEL, "base"), (FT_MODEL, "fine_tuned")]
    assert all(
        r.training_run == succeeded_run
        and r.dataset_version == version
        and r.split == "validation"
        and r.status == "done"
        and r.total == 3
        for r in runs
    )

    base_eval, ft_eval = runs
    page = client.get(reverse("admin:finetune_evalrun_change", args=[ft_eval.pk])).content.decode()
    assert "Trained on" in page and version.content_hash in page
    assert "n_epochs=3, batch_size=auto, learning_rate_multiplier=0.5" in page
    assert "final model of the run" in page and "ftjob-lineage" in page
    page = client.get(reverse("admin:finetune_evalrun_change", args=[base_eval.pk])).content.decode()
    assert f"{MODEL} (not fine-tuned)" in page and f"training run {succeeded_run.pk}" in page
    run_page = client.get(reverse("admin:finetune_trainingrun_change", args=[succeeded_run.pk])).content.decode()
    assert f"Eval run {ft_eval.pk}</a>: {FT_MODEL}" in run_page

    card = model_version_promote(
        eval_run=ft_eval, user=manager, override_reason="three examples: pilot only"
    ).model_card
    assert "unknown (no training run linked)" not in card
    assert f"Base model: {MODEL}; training run {succeeded_run.pk} (job `ftjob-lineage`)" in card
    assert "Hyperparameters: n_epochs=3, batch_size=auto, learning_rate_multiplier=0.5" in card
    assert f"Trained on: {version} (hash `{version.content_hash}`)" in card


def test_evaluate_is_offered_only_for_a_succeeded_run(client, manager, version, succeeded_run):
    TrainingRun.objects.filter(pk=succeeded_run.pk).update(status="running", fine_tuned_model="")
    client.force_login(manager)
    page = client.get(reverse("admin:finetune_trainingrun_change", args=[succeeded_run.pk])).content.decode()
    assert "Evaluate (base vs fine-tuned)" not in page
    response = client.post(reverse("admin:finetune_trainingrun_evaluate", args=[succeeded_run.pk]), follow=True)
    assert "only a succeeded run with a fine-tuned model can be evaluated" in response.content.decode()
    assert not EvalRun.objects.exists()


def test_only_users_who_may_run_evals_can_evaluate_a_run(client, roles, succeeded_run):
    viewer = make_user(None)  # may see training runs, may not start evaluations
    viewer.user_permissions.add(Permission.objects.get(codename="view_trainingrun"))
    for user in (make_user("Reviewer"), viewer):
        client.force_login(user)
        assert client.post(reverse("admin:finetune_trainingrun_evaluate", args=[succeeded_run.pk])).status_code == 403
    page = client.get(reverse("admin:finetune_trainingrun_change", args=[succeeded_run.pk])).content.decode()
    assert "run-page" in page and "Evaluate (base vs fine-tuned)" not in page
    assert not EvalRun.objects.exists()


def test_evaluate_command_with_a_run_queues_both_and_prints_the_lineage(manager, version, succeeded_run):
    out = StringIO()
    call_command("evaluate", "--run", str(succeeded_run.pk), "--user", manager.username, stdout=out)
    text = out.getvalue()
    assert EvalRun.objects.filter(training_run=succeeded_run).count() == 2
    assert re.search(rf"eval run \d+: {re.escape(MODEL)} \(base\)", text)
    assert re.search(rf"eval run \d+: {re.escape(FT_MODEL)} \(fine_tuned\)", text)
    assert f"Trained on: {version} (hash {version.content_hash})" in text


def test_a_fine_tuned_model_or_checkpoint_evaluated_by_name_is_linked_to_its_run(manager, version, succeeded_run):
    checkpoint_model = f"{FT_MODEL}:ckpt-step-20"
    RunCheckpoint.objects.create(
        run=succeeded_run, remote_id="ftckpt-1", step=20, fine_tuned_model_checkpoint=checkpoint_model
    )
    out = StringIO()
    call_command("evaluate", checkpoint_model, str(version.pk), "--kind", "checkpoint", stdout=out)
    run = EvalRun.objects.get()
    assert run.training_run == succeeded_run
    assert "Checkpoint: " + checkpoint_model + " (step 20)" in out.getvalue()
    assert f"Base model: {MODEL}" in out.getvalue()
