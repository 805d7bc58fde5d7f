"""Continuity end to end, through the admin as a Manager would: one dataset version trained on OpenAI and on
Together (real SDKs against the local stand-ins, real burst RQ workers), both fine-tuned models evaluated on its
validation split beside the base model and a few-shot model, one promoted, an estimate answered by it; then a
task fallback is set and, past the promoted model's shutdown date, the fallback answers and says why."""

import datetime
import json
from decimal import Decimal

import pytest
from django.urls import reverse

from curation.models import BaseModel
from finetune.models import Estimate, EvalRun, ModelVersion, TaskFallback, TrainingRun
from tests.factories import make_base_model, make_drawing, make_user, technology_target
from tests.finetune.evalkit import MODEL, make_plan_dataset_version, targets_by_part
from tests.openai_standin import StandIn
from tests.openai_standin.chat import install_chat, part_number
from tests.openai_standin.fine_tuning import FineTuningAPI
from tests.together_standin import TogetherAPI, TogetherStandIn

pytestmark = pytest.mark.django_db
SHUTDOWN = datetime.date(2027, 1, 14)
FALLBACK = "gpt-4.1-nano-2025-04-14"  # no shutdown date announced
QWEN = "Qwen/Qwen3-VL-8B-Instruct"


def _question_part(body) -> str:
    """The part asked about: the last user turn (a few-shot request shows other parts before it)."""
    return part_number({"messages": [[m for m in body["messages"] if m["role"] == "user"][-1]]})


def _answer(targets):
    """Validation parts get their target; any other drawing a plan whose turning time says who answered."""

    def answer(body):
        part = _question_part(body)
        if part in targets:
            return json.dumps(targets[part])
        minutes = 5.0 if body["model"] == FALLBACK else 20.0
        return json.dumps(technology_target(part, minutes=minutes))

    return answer


@pytest.fixture
def standins(settings):
    """Both stand-ins, reached by the real SDKs through settings (fast retries)."""
    with StandIn() as openai_api, TogetherStandIn() as together_api:
        FineTuningAPI().install(openai_api)
        TogetherAPI().install(together_api)
        settings.OPENAI_API_KEY = "sk-test-not-a-real-key"
        settings.OPENAI_BASE_URL = openai_api.base_url
        settings.TOGETHER_API_KEY = "tg-test-not-a-real-key"
        settings.TOGETHER_BASE_URL = together_api.base_url
        settings.OPENAI_TIMEOUT_SECONDS = 5
        settings.OPENAI_MAX_ATTEMPTS = 4
        settings.OPENAI_BACKOFF_BASE_SECONDS = 0.01
        settings.OPENAI_BACKOFF_MAX_SECONDS = 0.05
        settings.OPENAI_RETRY_AFTER_MAX_SECONDS = 0.2
        yield openai_api, together_api


def _train(client, manager, version, base_model, provider, run_worker, capture, **extra) -> TrainingRun:
    """Add form → launch confirmation → worker uploads and creates the job → "Sync now" until succeeded."""
    response = client.post(
        reverse("admin:finetune_trainingrun_add"),
        {
            "dataset_version": version.pk,
            "base_model": base_model.pk,
            "provider": provider,
            "n_epochs": "2",
            "batch_size": "auto",
            "learning_rate_multiplier": "auto",
            "suffix": "continuity",
            **extra,
        },
    )
    assert response.status_code == 302, response.content.decode()[:3000]
    run = TrainingRun.objects.filter(provider=provider).latest("pk")
    launch_url = reverse("admin:finetune_trainingrun_launch", args=[run.pk])
    assert response.url == launch_url
    page = client.get(launch_url).content.decode()
    assert f"Yes, launch run {run.pk}" in page, page
    with capture(execute=True):
        response = client.post(launch_url, {"override": "1", "override_reason": "continuity rehearsal"}, follow=True)
    assert f"Run {run.pk} launched" in response.content.decode()
    run_worker("openai")
    for _ in range(10):
        client.post(reverse("admin:finetune_trainingrun_sync", args=[run.pk]))
        run.refresh_from_db()
        if run.is_terminal:
            break
    assert run.status == "succeeded" and run.fine_tuned_model, (run.status, run.sync_error)
    return run


def test_two_providers_four_models_one_promoted_then_the_fallback_answers_past_the_shutdown_date(
    client, roles, standins, settings, run_worker, django_capture_on_commit_callbacks
):
    openai_api, together_api = standins
    settings.GESTIMA_TODAY = "2026-11-28"
    manager = make_user("Manager")
    client.force_login(manager)
    gpt4o = make_base_model(
        MODEL, price="25", input_price_per_1m=Decimal("2.5"), output_price_per_1m=Decimal("10"), shutdown_date=SHUTDOWN
    )
    make_base_model(FALLBACK, price="1.5")
    qwen = BaseModel.objects.get(name=QWEN)  # seeded by the data migration
    version = make_plan_dataset_version(n_validation=3, n_train=3)
    task = version.dataset.task
    answer = _answer(targets_by_part(version))
    install_chat(openai_api, answer)
    together_api.together.chat_answer = answer

    # 1. The same dataset version trained on OpenAI and on Together.
    openai_run = _train(client, manager, version, gpt4o, "openai", run_worker, django_capture_on_commit_callbacks)
    together_run = _train(
        client, manager, version, qwen, "together", run_worker, django_capture_on_commit_callbacks, training_type="lora"
    )
    assert openai_run.fine_tuned_model.startswith(f"ft:{MODEL}:")
    assert f"gr{together_run.pk}" in together_run.fine_tuned_model
    assert len(openai_api.calls_to("POST", "/fine_tuning/jobs")) == 1
    assert len(together_api.calls_to("POST", "/fine-tunes")) == 1

    # 2. Four models on the same eval set: base and OpenAI fine-tuned in one click on the run page, ...
    run_page = client.get(reverse("admin:finetune_trainingrun_change", args=[openai_run.pk])).content.decode()
    assert "Evaluate (base vs fine-tuned)" in run_page
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(reverse("admin:finetune_trainingrun_evaluate", args=[openai_run.pk]))
    assert response.status_code == 302
    evaluate_url = reverse("admin:finetune_evalrun_evaluate")
    form = {"task": task.pk, "dataset_version": version.pk, "split": "validation"}
    # ... the Together fine-tuned model through the evaluate form (its provider follows the model) ...
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            evaluate_url,
            {**form, "model_name": together_run.fine_tuned_model, "model_kind": "fine_tuned", "provider": ""},
        )
    assert response.status_code == 302, response.content.decode()[:3000]
    # ... and a few-shot model, which shows its input cost before anything is queued.
    few_shot = {**form, "model_name": MODEL, "model_kind": "few_shot", "provider": "openai", "few_shot_k": "2"}
    page = client.post(evaluate_url, few_shot).content.decode()
    assert "Estimated input tokens" in page and "k = 2 per question" in page
    assert EvalRun.objects.filter(model_kind="few_shot").count() == 0
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(evaluate_url, {**few_shot, "confirm": "1"})
    assert response.status_code == 302
    run_worker("openai")

    runs = {(r.model_name, r.model_kind): r for r in EvalRun.objects.all()}
    assert set(runs) == {
        (MODEL, "base"),
        (openai_run.fine_tuned_model, "fine_tuned"),
        (together_run.fine_tuned_model, "fine_tuned"),
        (MODEL, "few_shot"),
    }
    for run in runs.values():
        assert run.status == EvalRun.Status.DONE and run.done_count == 3 and run.error_count == 0, (run, run.error)
        assert run.dataset_version == version and run.split == "validation"
    assert runs[(together_run.fine_tuned_model, "fine_tuned")].provider == "together"
    assert runs[(together_run.fine_tuned_model, "fine_tuned")].training_run == together_run
    assert len(together_api.calls_to("POST", "/chat/completions")) == 3
    changelist = client.get(
        reverse("admin:finetune_evalrun_changelist") + f"?dataset_version__id__exact={version.pk}"
    ).content.decode()
    for name in (MODEL, openai_run.fine_tuned_model, together_run.fine_tuned_model):
        assert name in changelist, name
    for label in ("Base model", "Fine-tuned model", "Few-shot from reviewed examples"):
        assert label in changelist, label
    assert changelist.count("95 % CI") == 4

    # 3. The OpenAI fine-tuned model promoted through the promote view; an estimate answered by it.
    ft_eval = runs[(openai_run.fine_tuned_model, "fine_tuned")]
    promote_url = reverse("admin:finetune_evalrun_promote", args=[ft_eval.pk])
    page = client.get(promote_url).content.decode()
    assert f"Promote <b>{openai_run.fine_tuned_model}</b>" in page
    response = client.post(promote_url, {"override_reason": "three validation examples: continuity rehearsal"})
    active = ModelVersion.objects.get(model_name=openai_run.fine_tuned_model)
    assert response.status_code == 302 and response.url == reverse(
        "admin:finetune_modelversion_change", args=[active.pk]
    )
    assert active.is_active and not active.policy_passed

    drawing = make_drawing(part_number="CONT-1")
    estimate_url = reverse("admin:finetune_estimate_create")
    response = client.post(estimate_url, {"task": task.pk, "drawing": drawing.pk})
    before = Estimate.objects.latest("pk")
    assert response.status_code == 302 and response.url == reverse("admin:finetune_estimate_change", args=[before.pk])
    assert before.answered_by == "active" and before.model_name == openai_run.fine_tuned_model
    assert before.fallback_reason == "" and before.error == ""
    assert before.output["operations"][0]["machine_time_min_per_piece"] == 20.0

    # 4. A fallback set in its admin form; past the shutdown date of gpt-4o it answers, and says why.
    response = client.post(
        reverse("admin:finetune_taskfallback_add"),
        {"task": task.pk, "model_name": FALLBACK, "provider": "openai", "prompt_text": "", "note": "serves on"},
    )
    assert response.status_code == 302, response.content.decode()[:3000]
    assert TaskFallback.objects.get(task=task).updated_by == manager

    settings.GESTIMA_TODAY = "2027-01-15"
    asked = len(openai_api.calls_to("POST", "/chat/completions"))
    response = client.post(estimate_url, {"task": task.pk, "drawing": drawing.pk}, follow=True)
    after = Estimate.objects.latest("pk")
    assert after.pk != before.pk
    assert after.answered_by == "fallback" and after.model_name == FALLBACK and after.error == ""
    assert after.output["operations"][0]["machine_time_min_per_piece"] == 5.0
    assert after.fallback_reason == (
        f"The active model {openai_run.fine_tuned_model} stopped serving on 2027-01-14 "
        f"(the shutdown date of its base {MODEL})."
    )
    assert [c.json()["model"] for c in openai_api.calls_to("POST", "/chat/completions")[asked:]] == [FALLBACK]
    page = response.content.decode()
    assert "Fallback model" in page and "stopped serving on 2027-01-14" in page and FALLBACK in page
