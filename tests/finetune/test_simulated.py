"""The simulated provider (the demo without API keys): the whole loop through the real services and a real burst
worker, answers from the ground truth, and the guards that keep it away from real tasks."""

import base64
import json

import pytest
from django.core.management import call_command
from django.urls import reverse

from curation.models import DatasetVersion, Task
from curation.provider_names import ProviderName
from finetune.models import Estimate, EvalRun, ModelKind, ModelVersion, TrainingRun
from finetune.providers.base import ProviderError, default_provider_name, get_provider
from finetune.selectors import eval_run_mape
from finetune.services.estimates import EstimateError, estimate_create
from finetune.services.evals import training_run_evaluate
from finetune.services.promotion import PromotionRefused, model_version_promote
from finetune.services.run_launch import training_run_create
from finetune.services.run_state import TrainingRunError
from finetune.services.run_sync import training_run_sync
from tests.factories import make_base_model, make_task, make_user
from tests.finetune.evalkit import make_plan_dataset_version
from tests.finetune.runkit import launch

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def simulated(settings):
    settings.SIMULATED_PROVIDER = True
    for name in ("OPENAI_API_KEY", "AZURE_OPENAI_API_KEY", "TOGETHER_API_KEY"):
        setattr(settings, name, "")
    return settings


def _trained_and_evaluated(*, demo: bool, manager, run_worker, django_capture_on_commit_callbacks):
    task = make_task(demo=demo)
    version = make_plan_dataset_version(task=task, n_validation=20, n_train=10, minutes=lambda i: 6 + i * 1.5)
    DatasetVersion.objects.filter(pk=version.pk).update(gates_passed=True)
    base = make_base_model("gpt-4.1-mini-2025-04-14")
    run = training_run_create(dataset_version=version, base_model=base, user=manager, suffix="demo")
    assert run.provider == ProviderName.SIMULATED  # the default without a real key, with the setting on
    run = launch(run, manager, run_worker, django_capture_on_commit_callbacks)
    run = training_run_sync(run=run)
    with django_capture_on_commit_callbacks(execute=True):
        evals, created = training_run_evaluate(run=run, user=manager)
    run_worker()
    return task, run, [EvalRun.objects.get(pk=e.pk) for e in evals]


def test_a_run_trains_instantly_is_evaluated_and_promoted_on_a_demo_task(
    simulated, manager, run_worker, django_capture_on_commit_callbacks
):
    promoter = make_user(superuser=True)
    task, run, (base_eval, tuned_eval) = _trained_and_evaluated(
        demo=True,
        manager=manager,
        run_worker=run_worker,
        django_capture_on_commit_callbacks=django_capture_on_commit_callbacks,
    )

    assert run.status == TrainingRun.Status.SUCCEEDED and run.is_simulated
    assert run.fine_tuned_model.startswith("ft:gpt-4.1-mini-2025-04-14:simulated:demo:")
    losses = list(run.metrics.order_by("step").values_list("train_loss", flat=True))
    assert len(losses) == 30 and losses[0] > 3 * losses[-1]  # 10 examples x 3 epochs, falling
    assert run.metrics.exclude(valid_loss=None).exists()
    checkpoints = list(run.checkpoints.order_by("step"))
    assert len(checkpoints) == 3 and checkpoints[-1].fine_tuned_model_checkpoint == run.fine_tuned_model
    assert "valid_loss" in checkpoints[0].metrics

    assert {e.model_kind for e in (base_eval, tuned_eval)} == {ModelKind.BASE, ModelKind.FINE_TUNED}
    assert all(e.status == EvalRun.Status.DONE and e.is_simulated and e.total == 20 for e in (base_eval, tuned_eval))
    base_mape, tuned_mape = eval_run_mape(base_eval), eval_run_mape(tuned_eval)
    assert 0.04 < tuned_mape < 0.15 < 0.25 < base_mape
    assert tuned_eval.metrics["json_validity"]["value"] == 1.0

    version = model_version_promote(eval_run=tuned_eval, user=promoter)
    assert version.is_active and version.is_simulated and version.policy_passed

    drawing = run.dataset_version.members.filter(split="validation").first().example.drawing
    first = estimate_create(drawing=drawing, task=task, user=promoter)
    second = estimate_create(drawing=drawing, task=task, user=promoter)
    assert first.is_simulated and first.output == second.output  # seeded: the same answer every time
    truth = json.loads(run.dataset_version.members.get(example__drawing=drawing).target)
    assert first.output["part_number"] == truth["part_number"]
    assert (
        first.output["operations"][0]["machine_time_min_per_piece"]
        != truth["operations"][0]["machine_time_min_per_piece"]
    )


def test_a_simulated_model_is_refused_for_a_real_task(
    simulated, manager, run_worker, django_capture_on_commit_callbacks
):
    promoter = make_user(superuser=True)
    task, run, (_, tuned_eval) = _trained_and_evaluated(
        demo=False,
        manager=manager,
        run_worker=run_worker,
        django_capture_on_commit_callbacks=django_capture_on_commit_callbacks,
    )
    assert tuned_eval.status == EvalRun.Status.DONE and tuned_eval.is_simulated  # evaluating is allowed, and marked

    with pytest.raises(PromotionRefused, match="simulated model .* not a demo task"):
        model_version_promote(eval_run=tuned_eval, user=promoter, override_reason="I insist")
    assert not ModelVersion.objects.filter(task=task).exists()

    # A version made while the task was a demo one, then the task made real: estimates refuse it.
    Task.objects.filter(pk=task.pk).update(demo=True)
    model_version_promote(eval_run=tuned_eval, user=promoter)
    Task.objects.filter(pk=task.pk).update(demo=False)
    task.refresh_from_db()
    drawing = run.dataset_version.members.first().example.drawing
    with pytest.raises(EstimateError, match="simulated model .* not a demo task"):
        estimate_create(drawing=drawing, task=task, user=promoter)


def test_the_estimate_api_answers_the_refusal_as_json(
    simulated, manager, run_worker, django_capture_on_commit_callbacks, client
):
    promoter = make_user(superuser=True)
    task, run, (_, tuned_eval) = _trained_and_evaluated(
        demo=True,
        manager=manager,
        run_worker=run_worker,
        django_capture_on_commit_callbacks=django_capture_on_commit_callbacks,
    )
    model_version_promote(eval_run=tuned_eval, user=promoter)
    Task.objects.filter(pk=task.pk).update(demo=False)
    drawing = run.dataset_version.members.first().example.drawing
    credentials = base64.b64encode(f"{promoter.username}:pw-Gestima-1".encode()).decode()
    response = client.post(
        reverse("api:estimates"),
        data=json.dumps({"drawing_id": drawing.pk}),
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Basic {credentials}",
    )
    assert response.status_code == 409
    assert "simulated model" in response.json()["error"]


def test_off_unless_the_setting_is_on(settings):
    settings.SIMULATED_PROVIDER = False
    settings.OPENAI_API_KEY = settings.AZURE_OPENAI_API_KEY = settings.TOGETHER_API_KEY = ""
    assert default_provider_name() == ProviderName.DRYRUN
    with pytest.raises(ProviderError, match="GESTIMA_SIMULATED_PROVIDER"):
        get_provider(ProviderName.SIMULATED).chat(model="gpt-4.1-mini", messages=[{"role": "user", "content": "hi"}])
    version = make_plan_dataset_version(task=make_task(demo=True), n_validation=2, n_train=10)
    with pytest.raises(TrainingRunError, match="simulated provider is off"):
        training_run_create(
            dataset_version=version, base_model=make_base_model(), user=None, provider=ProviderName.SIMULATED
        )
    settings.SIMULATED_PROVIDER = True
    settings.OPENAI_API_KEY = "sk-real"
    assert default_provider_name() == ProviderName.OPENAI  # a real key always wins


def test_demo_data_with_the_simulated_provider_gives_the_whole_loop(simulated, capsys):
    call_command("demo_data")
    out = capsys.readouterr().out
    task = Task.objects.get(slug="technology_builder")
    assert task.demo
    run = TrainingRun.objects.get(provider=ProviderName.SIMULATED)
    version = run.dataset_version
    assert version.gates_passed and version.counts["train"] >= 10 and version.counts["validation"] >= 20
    assert run.status == TrainingRun.Status.SUCCEEDED and run.metrics.exists()
    evals = {e.model_kind: e for e in EvalRun.objects.filter(training_run=run)}
    assert eval_run_mape(evals[ModelKind.FINE_TUNED]) < eval_run_mape(evals[ModelKind.BASE])
    active = ModelVersion.objects.get(task=task, is_active=True)
    assert active.model_name == run.fine_tuned_model and active.policy_passed
    assert "gates pass: ready to launch" in out and "(simulated)" in out
    # Estimates by the promoted model, scored against the shop's records: the estimate pages have something to show.
    estimates = list(Estimate.objects.filter(task=task))
    assert len(estimates) == 3 and all(e.model_name == active.model_name and e.is_simulated for e in estimates)
    assert all(e.scored_ground_truth_at is not None for e in estimates)
    assert "3 demo estimate(s) by the simulated model, 3 scored against production records" in out

    call_command("demo_data")  # a second run makes no second run, evaluation, model version or estimate
    assert TrainingRun.objects.count() == 1 and EvalRun.objects.count() == 2 and ModelVersion.objects.count() == 1
    assert Estimate.objects.count() == 3
