"""Continuity: past a shutdown date the task's fallback answers (and says why); launches past the jobs-end date are
refused; the admin index and the registry warn about an active model that shuts down soon, with candidates."""

import base64
import datetime
import json
from io import StringIO

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.urls import reverse

from curation.models import Drawing
from finetune.metrics import pct
from finetune.models import Estimate, EvalRun, TaskFallback
from finetune.selectors import eval_run_mape
from finetune.services.estimates import EstimateError, estimate_create
from finetune.services.promotion import model_version_promote
from finetune.services.run_launch import training_run_create, training_run_launch
from finetune.services.run_state import TrainingRunError
from tests.factories import make_base_model, make_dataset_version, make_drawing, make_user, technology_target
from tests.finetune.evalkit import FT_MODEL, make_done_eval_run, make_plan_dataset_version, use_standin
from tests.openai_standin import StandIn
from tests.openai_standin.base import Response
from tests.openai_standin.chat import install_chat, part_number

pytestmark = pytest.mark.django_db
PASSWORD = "pw-Gestima-1"
SHUTDOWN = datetime.date(2027, 1, 14)
FALLBACK = "gpt-4.1-nano-2025-04-14"  # no shutdown date announced


@pytest.fixture
def manager(roles):
    return make_user("Manager")


@pytest.fixture
def models(db):
    """The OpenAI snapshots as seeded: gpt-4o shuts down on 2027-01-14 (with every model fine-tuned on it)."""
    return {
        "gpt-4o": make_base_model("gpt-4o-2024-08-06", price="25", shutdown_date=SHUTDOWN),
        "gpt-4o-mini": make_base_model("gpt-4o-mini-2024-07-18", price="3", shutdown_date=SHUTDOWN),
        "nano": make_base_model(FALLBACK, price="1.5"),
    }


@pytest.fixture
def standin(settings):
    """Answers with a plan whose turning time says which model answered (20: the fine-tuned one, 5: the fallback)."""
    failing = set()

    def answer(body):
        if body["model"] in failing:
            return Response(
                503,
                {
                    "error": {
                        "message": "The server is overloaded.",
                        "type": "server_error",
                        "code": "server_overloaded",
                    }
                },
                headers={"retry-after-ms": "1"},
            )
        minutes = 20.0 if body["model"].startswith("ft:") else 5.0
        return json.dumps(technology_target(part_number(body), minutes=minutes))

    with StandIn() as api:
        install_chat(api, answer)
        use_standin(settings, api)
        api.failing = failing
        yield api


def _promote_fine_tuned(manager):
    version = make_plan_dataset_version(n_validation=3, n_train=0)
    model_version_promote(
        eval_run=make_done_eval_run(version, model_name=FT_MODEL, kind="fine_tuned"),
        user=manager,
        override_reason="lifecycle test on a small evaluation set",
    )
    return version


def _basic(user):
    return {"HTTP_AUTHORIZATION": "Basic " + base64.b64encode(f"{user.username}:{PASSWORD}".encode()).decode()}


def test_past_the_shutdown_date_the_fallback_answers_and_the_reason_is_recorded(
    client, manager, models, standin, settings
):
    version = _promote_fine_tuned(manager)
    task = version.dataset.task
    TaskFallback.objects.create(task=task, model_name=FALLBACK, provider="openai")
    drawing = make_drawing(part_number="GONE-1")

    settings.GESTIMA_TODAY = "2027-01-13"  # the day before: the fine-tuned model still answers
    before = estimate_create(drawing=drawing, task=task, user=manager)
    assert before.answered_by == "active" and before.model_name == FT_MODEL and before.fallback_reason == ""

    settings.GESTIMA_TODAY = "2027-01-14"
    after = estimate_create(drawing=drawing, task=task, user=manager)
    assert after.answered_by == "fallback" and after.model_name == FALLBACK and after.provider == "openai"
    assert after.error == "" and after.output["operations"][0]["machine_time_min_per_piece"] == 5.0
    assert after.fallback_reason == (
        f"The active model {FT_MODEL} stopped serving on 2027-01-14 (the shutdown date of its base gpt-4o-2024-08-06)."
    )
    # The gone model is not called: it would only fail.
    assert [c.json()["model"] for c in standin.calls_to("POST", "/chat/completions")] == [FT_MODEL, FALLBACK]
    # A base model gets the task's full prompt, not the compact one the fine-tuned model learnt.
    assert standin.calls_to("POST", "/chat/completions")[-1].json()["messages"][0]["content"] == task.system_prompt

    # The API answer and the admin page say who answered and why.
    response = client.post(
        "/api/estimates", json.dumps({"drawing_id": drawing.pk}), content_type="application/json", **_basic(manager)
    )
    assert response.status_code == 201, response.content
    data = response.json()
    assert data["answered_by"] == "fallback" and data["model"] == FALLBACK
    assert "stopped serving on 2027-01-14" in data["fallback_reason"]
    client.force_login(manager)
    page = client.get(reverse("admin:finetune_estimate_change", args=[after.pk])).content.decode()
    assert "Fallback model" in page and "stopped serving on 2027-01-14" in page
    out = StringIO()
    call_command("estimate", "GONE-1", "--task", task.slug, "--user", manager.username, stdout=out)
    assert (
        f"by {FALLBACK}" in out.getvalue()
        and "answered by the task's fallback model: The active model" in out.getvalue()
    )


def test_past_the_shutdown_date_without_a_fallback_is_a_clear_error(client, manager, models, standin, settings):
    version = _promote_fine_tuned(manager)
    settings.GESTIMA_TODAY = "2027-02-01"
    drawing = make_drawing(part_number="GONE-2")
    with pytest.raises(EstimateError, match=r"stopped serving on 2027-01-14.*has no fallback model"):
        estimate_create(drawing=drawing, task=version.dataset.task, user=manager)
    response = client.post(
        "/api/estimates", json.dumps({"drawing_id": drawing.pk}), content_type="application/json", **_basic(manager)
    )
    assert response.status_code == 409 and "no fallback model" in response.json()["error"]
    # A posted PDF is refused before it is stored, in the very words of an estimate of a stored drawing.
    pdf = {"file": SimpleUploadedFile("gone.pdf", b"%PDF-1.4\n" + b"0" * 100, content_type="application/pdf")}
    refused = client.post("/api/estimates", {**pdf, "task": version.dataset.task.slug}, **_basic(manager))
    assert refused.status_code == 409 and refused.json()["error"] == response.json()["error"]
    # A fallback that died with it is no fallback either.
    TaskFallback.objects.create(task=version.dataset.task, model_name="gpt-4o-mini-2024-07-18", provider="openai")
    with pytest.raises(EstimateError, match="fallback model gpt-4o-mini-2024-07-18 stopped serving on 2027-01-14 too"):
        estimate_create(drawing=drawing, task=version.dataset.task, user=manager)
    pdf = {"file": SimpleUploadedFile("gone.pdf", b"%PDF-1.4\n" + b"0" * 100, content_type="application/pdf")}
    refused = client.post("/api/estimates", {**pdf, "task": version.dataset.task.slug}, **_basic(manager))
    assert (
        refused.status_code == 409
        and "gpt-4o-mini-2024-07-18 stopped serving on 2027-01-14 too" in (refused.json()["error"])
    )
    assert not Estimate.objects.exists() and not standin.calls_to("POST", "/chat/completions")
    assert not Drawing.objects.filter(original_name="gone.pdf").exists()  # no PDF stored


def test_a_provider_that_keeps_failing_is_answered_by_the_fallback(manager, models, standin):
    version = _promote_fine_tuned(manager)
    task = version.dataset.task
    TaskFallback.objects.create(task=task, model_name=FALLBACK, provider="openai", note="cheapest evaluated")
    standin.failing.add(FT_MODEL)

    estimate = estimate_create(drawing=make_drawing(part_number="DOWN-1"), task=task, user=manager)
    assert estimate.answered_by == "fallback" and estimate.model_name == FALLBACK and estimate.error == ""
    assert estimate.fallback_reason.startswith(f"The active model {FT_MODEL} failed after the provider's retries: ")
    assert "The server is overloaded." in estimate.fallback_reason
    models_asked = [c.json()["model"] for c in standin.calls_to("POST", "/chat/completions")]
    assert models_asked[-1] == FALLBACK and models_asked.count(FT_MODEL) >= 2  # the SDK retried before we fell back


def test_no_fallback_and_a_failing_provider_fails_with_its_words_and_stores_nothing(manager, models, standin):
    from finetune.models import Estimate
    from finetune.services.estimates import EstimateFailed

    version = _promote_fine_tuned(manager)
    standin.failing.add(FT_MODEL)
    with pytest.raises(EstimateFailed, match="did not answer: .*The server is overloaded.") as failed:
        estimate_create(drawing=make_drawing(), task=version.dataset.task, user=manager)
    assert failed.value.kind == "api_error"
    assert not Estimate.objects.exists()


def test_no_active_model_but_a_fallback_answers_with_the_reason(manager, models, standin):
    version = make_plan_dataset_version(n_validation=1, n_train=0)
    task = version.dataset.task
    TaskFallback.objects.create(task=task, model_name=FALLBACK, provider="openai")
    estimate = estimate_create(drawing=make_drawing(), task=task, user=manager)
    assert estimate.answered_by == "fallback" and estimate.model_version is None
    assert estimate.fallback_reason == f"Task {task.slug} has no active model."


def test_launch_is_refused_after_the_jobs_end_date_with_the_reason(client, manager, settings):
    gpt4o = make_base_model(
        "gpt-4o-2024-08-06", price="25", jobs_end_date=datetime.date(2027, 1, 6), shutdown_date=SHUTDOWN
    )
    run = training_run_create(dataset_version=make_dataset_version(), base_model=gpt4o, user=manager, provider="openai")
    client.force_login(manager)
    launch_url = reverse("admin:finetune_trainingrun_launch", args=[run.pk])

    settings.GESTIMA_TODAY = "2027-01-06"  # the last day jobs are accepted
    page = client.get(launch_url).content.decode()
    assert "cannot be launched" not in page and "no new fine-tuning jobs after 2027-01-06 (in 0 days)" in page

    settings.GESTIMA_TODAY = "2027-01-07"
    page = client.get(launch_url).content.decode()
    assert "This run cannot be launched" in page and "Yes, launch run" not in page
    assert "gpt-4o-2024-08-06 accepts no new fine-tuning jobs after 2027-01-06" in page
    with pytest.raises(TrainingRunError, match="accepts no new fine-tuning jobs after 2027-01-06.*No override"):
        training_run_launch(run=run, user=manager, override_reason="we really want it")
    run.refresh_from_db()
    assert run.status == "draft"
    # The dry run writes files and calls nothing: still allowed, for rehearsals.
    dry = training_run_create(dataset_version=run.dataset_version, base_model=gpt4o, user=manager, provider="dryrun")
    assert (
        "cannot be launched"
        not in client.get(reverse("admin:finetune_trainingrun_launch", args=[dry.pk])).content.decode()
    )


def test_index_and_registry_warn_with_the_date_and_the_candidates_already_evaluated(client, manager, models, settings):
    version = _promote_fine_tuned(manager)
    nano = make_done_eval_run(version, model_name=FALLBACK, factor=1.2)  # serves on: a candidate
    make_done_eval_run(version, model_name="gpt-4o-mini-2024-07-18", factor=1.0)  # dies the same day: not one
    client.force_login(manager)
    pages = {"index": reverse("admin:index"), "registry": reverse("admin:finetune_modelversion_changelist")}

    settings.GESTIMA_TODAY = "2026-11-01"  # 74 days before: beyond the 60-day warning
    for url in pages.values():
        assert "Active models shutting down" not in client.get(url).content.decode()

    settings.GESTIMA_TODAY = "2026-12-20"
    for name, url in pages.items():
        page = client.get(url).content.decode()
        box = page[page.index('id="lifecycle-warnings"') :]
        box = box[: box.index("</table>")]
        assert FT_MODEL in box and "stops serving on <strong>2027-01-14</strong> (in 25 days)" in box, name
        assert "the shutdown date of its base gpt-4o-2024-08-06" in box
        assert "No fallback model is set" in box
        assert FALLBACK in box and pct(eval_run_mape(nano)) in box, name
        assert "gpt-4o-mini-2024-07-18" not in box, name
    assert eval_run_mape(nano) == pytest.approx(0.2)
    registry = client.get(pages["registry"]).content.decode()
    assert (
        "2027-01-14" in registry and "fine-tuned from gpt-4o-2024-08-06, which stops serving on 2027-01-14" in registry
    )

    # Promoting a model that dies on the same day says so on the confirmation page; the candidate's does not.
    mini = EvalRun.objects.get(model_name="gpt-4o-mini-2024-07-18")
    promote = client.get(reverse("admin:finetune_evalrun_promote", args=[mini.pk])).content.decode()
    assert (
        "⚠ gpt-4o-mini-2024-07-18: no new fine-tuning jobs after 2027-01-06 (in 17 days); "
        "stops serving on 2027-01-14 (in 25 days)" in promote
    )
    promote = client.get(reverse("admin:finetune_evalrun_promote", args=[nano.pk])).content.decode()
    assert "stops serving" not in promote

    # A reviewer sees the same box (read access to the registry), without the link to change the fallback.
    reviewer = make_user("Reviewer")
    client.force_login(reviewer)
    page = client.get(pages["index"]).content.decode()
    assert "Active models shutting down" in page and "Set the fallback" not in page


def test_the_registry_and_fallback_lists_show_serves_until_without_a_query_per_row(client, manager, models, settings):
    """Each row's shutdown date (a fine-tuned model inherits its base's) comes from one read of the base models."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from tests.factories import make_task

    settings.GESTIMA_TODAY = "2026-01-05"  # far from the shutdown: no warnings box, whose size follows the tasks
    client.force_login(manager)
    counts = {"registry": [], "fallbacks": []}
    for n, slug in enumerate(("technology_builder", "support_reply", "code_fix"), start=1):
        task = make_task(slug, promotion_policy={"min_examples": 1})
        version = make_plan_dataset_version(task=task, n_validation=3, n_train=0)
        model_version_promote(
            eval_run=make_done_eval_run(version, model_name=FT_MODEL, kind="fine_tuned"),
            user=manager,
            override_reason="lifecycle list test",
        )
        TaskFallback.objects.create(task=task, model_name=FALLBACK, provider="openai")
        if n == 2:
            continue
        for name, url in (
            ("registry", "/admin/finetune/modelversion/"),
            ("fallbacks", "/admin/finetune/taskfallback/"),
        ):
            client.get(url)  # warm: per-process caches fill on a first visit
            with CaptureQueriesContext(connection) as queries:
                page = client.get(url).content.decode()
            counts[name].append(len(queries.captured_queries))
            shown = (
                'class="field-serves_until">2027-01-14<'
                if name == "registry"
                else 'class="field-serves_until">no shutdown date known'
            )
            assert page.count(shown) == n, name
    assert counts["registry"][0] == counts["registry"][1] and counts["fallbacks"][0] == counts["fallbacks"][1], counts
