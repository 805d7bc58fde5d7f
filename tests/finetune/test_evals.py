"""Eval runs end to end: real RQ worker, real openai SDK over HTTP to the stand-in, results and metrics."""

import json
import re
import threading
from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from finetune.models import EvalResult, EvalRun
from finetune.services.evals import EvalError, eval_run_create, eval_run_resume
from tests.factories import make_task, make_user
from tests.finetune.evalkit import (
    FT_MODEL,
    MODEL,
    make_priced_base_model,
    make_plan_dataset_version,
    targets_by_part,
    use_standin,
)
from tests.openai_standin import StandIn
from tests.openai_standin.base import api_error
from tests.openai_standin.chat import Reply, install_chat, part_number

MT = "operations[].machine_time_min_per_piece"
pytestmark = pytest.mark.django_db


def scaled(target, factor):
    plan = json.loads(json.dumps(target))
    for op in plan["operations"]:
        op["machine_time_min_per_piece"] = round(op["machine_time_min_per_piece"] * factor, 6)
    return plan


@pytest.fixture
def manager(roles):
    return make_user("Manager")


def test_eval_run_stores_every_outcome_and_metrics_match_hand_computation(
    settings, manager, run_worker, django_capture_on_commit_callbacks
):
    make_priced_base_model()
    task = make_task()
    version = make_plan_dataset_version(task=task, n_validation=5)
    targets = targets_by_part(version)

    def answer(body):
        pn = part_number(body)
        i = int(pn.split("-")[1])
        target = targets[pn]
        if i == 1:
            return json.dumps(scaled(target, 1.2))  # +20 % on both machine times
        if i == 2:
            return "Here is the plan: {not json"  # invalid JSON: counted, not fatal
        if i == 3:
            return Reply(refusal="I can't help with that.")
        if i == 4:
            return json.dumps({k: v for k, v in target.items() if k != "machines"})  # schema mismatch, numbers exact
        return json.dumps(target)

    with StandIn() as api:
        install_chat(api, answer)
        use_standin(settings, api)
        with django_capture_on_commit_callbacks(execute=True):
            run = eval_run_create(
                task=task, model_name=MODEL, model_kind="base", provider="openai", dataset_version=version, user=manager
            )
        run_worker("openai")
        calls = api.calls_to("POST", "/chat/completions")

    run.refresh_from_db()
    assert run.status == EvalRun.Status.DONE, run.error
    assert len(calls) == 5
    body = calls[0].json()
    assert body["temperature"] == 0 and body["response_format"] == {"type": "json_object"}
    assert body["messages"][0] == {"role": "system", "content": task.system_prompt}
    assert run.prompt_kind == "full" and run.prompt_text == task.system_prompt
    images = [p for p in body["messages"][1]["content"] if p["type"] == "image_url"]
    assert images and images[0]["image_url"]["url"].startswith("data:image/png;base64,")

    kinds = dict(EvalResult.objects.filter(eval_run=run).values_list("example__drawing__part_number", "error_kind"))
    assert sorted(kinds.values()) == ["", "", "invalid_json", "refusal", "schema_mismatch"]
    assert (run.done_count, run.error_count, run.total) == (2, 3, 5)
    # 100 prompt + 20 completion tokens per call at $2.50 / $10 per 1M tokens.
    assert run.cost_usd == Decimal("0.002250") and run.input_tokens == 500 and run.output_tokens == 100
    m = run.metrics
    assert m["json_validity"]["value"] == pytest.approx(3 / 5)
    assert m["schema_validity"]["value"] == pytest.approx(2 / 5)
    # APEs per example: [0, 0], [.2, .2], [1, 1] (invalid), [1, 1] (refusal), [0, 0] (schema mismatch, exact numbers)
    assert m["numeric"][MT]["mape"]["value"] == pytest.approx(4.4 / 10)
    assert m["error_counts"] == {"invalid_json": 1, "refusal": 1, "schema_mismatch": 1}


def test_fine_tuned_models_get_the_compact_prompt_and_api_errors_do_not_stop_the_run(
    settings, manager, run_worker, django_capture_on_commit_callbacks
):
    task = make_task()
    version = make_plan_dataset_version(task=task, n_validation=3)
    targets = targets_by_part(version)
    with StandIn() as api:
        install_chat(api, lambda body: json.dumps(targets[part_number(body)]))
        api.script("POST", "/chat/completions", api_error(400, "Invalid image", code="invalid_image"))
        use_standin(settings, api)
        with django_capture_on_commit_callbacks(execute=True):
            run = eval_run_create(
                task=task,
                model_name=FT_MODEL,
                model_kind="fine_tuned",
                provider="openai",
                dataset_version=version,
                user=manager,
            )
        run_worker("openai")
        calls = api.calls_to("POST", "/chat/completions")
    run.refresh_from_db()
    assert run.status == EvalRun.Status.DONE
    assert run.prompt_kind == "compact" and calls[-1].json()["messages"][0]["content"] == task.compact_prompt
    api_errors = EvalResult.objects.filter(eval_run=run, error_kind="api_error")
    assert api_errors.count() == 1 and "invalid_image" in api_errors.get().error_message
    assert run.metrics["api_errors"] == 1 and run.metrics["json_validity"]["value"] == 1.0


def test_a_resumed_run_asks_only_the_examples_without_a_result(
    settings, manager, run_worker, django_capture_on_commit_callbacks
):
    task = make_task()
    version = make_plan_dataset_version(task=task, n_validation=5)
    targets = targets_by_part(version)
    with StandIn() as api:
        install_chat(api, lambda body: json.dumps(targets[part_number(body)]))
        use_standin(settings, api)
        with django_capture_on_commit_callbacks(execute=False):  # the first job is "lost" with its worker
            run = eval_run_create(
                task=task, model_name=MODEL, model_kind="base", provider="openai", dataset_version=version, user=manager
            )
        # The killed worker had stored 3 answers and was running when it died.
        members = list(version.members.filter(split="validation").order_by("position"))
        for member in members[:3]:
            EvalResult.objects.create(
                eval_run=run,
                member=member,
                example_id=member.example_id,
                raw_output="{}",
                parsed=json.loads(member.target),
                input_tokens=100,
            )
        stale = timezone.now() - timedelta(seconds=settings.EVAL_STALE_SECONDS + 5)
        EvalRun.objects.filter(pk=run.pk).update(status="running", attempts=1, started_at=stale, heartbeat_at=stale)

        with django_capture_on_commit_callbacks(execute=True):
            eval_run_resume(eval_run=run, user=manager)
        run_worker("openai")
        assert len(api.calls_to("POST", "/chat/completions")) == 2  # only the 2 missing examples

        # Running the job again finds the run done: no call, same results.
        from finetune.jobs import eval_run_execute_job

        eval_run_execute_job(run.pk)
        assert len(api.calls_to("POST", "/chat/completions")) == 2
    run.refresh_from_db()
    assert run.status == EvalRun.Status.DONE and run.attempts == 2
    assert run.results.count() == 5 and run.done_count == 5
    with pytest.raises(EvalError):
        eval_run_resume(eval_run=run, user=manager)


def test_requests_in_flight_never_exceed_the_concurrency(
    settings, manager, run_worker, django_capture_on_commit_callbacks
):
    task = make_task()
    version = make_plan_dataset_version(task=task, n_validation=8, n_train=0)
    targets = targets_by_part(version)
    lock, state = threading.Lock(), {"now": 0, "max": 0}
    overlapped = threading.Event()

    def answer(body):
        with lock:
            state["now"] += 1
            state["max"] = max(state["max"], state["now"])
            if state["now"] >= 2:
                overlapped.set()
        # The first request waits for a second one to arrive, so a run that overlaps shows it without luck;
        # a run that sends one request at a time stops waiting after one timeout and fails below.
        if not overlapped.wait(timeout=10):
            overlapped.set()
        threading.Event().wait(0.05)  # held a little, so requests beyond the limit would pile up and be seen
        with lock:
            state["now"] -= 1
        return json.dumps(targets[part_number(body)])

    with StandIn() as api:
        install_chat(api, answer)
        use_standin(settings, api)
        with django_capture_on_commit_callbacks(execute=True):
            run = eval_run_create(
                task=task,
                model_name=MODEL,
                model_kind="base",
                provider="openai",
                dataset_version=version,
                user=manager,
                concurrency=3,
            )
        run_worker("openai")
    run.refresh_from_db()
    assert run.status == EvalRun.Status.DONE and run.done_count == 8
    assert state["max"] <= 3, f"{state['max']} requests in flight with a concurrency of 3"
    assert state["max"] >= 2, "requests were sent one at a time: nothing overlapped"


def test_reviewers_cannot_start_evaluations(roles):
    from django.core.exceptions import PermissionDenied

    version = make_plan_dataset_version(n_validation=1, n_train=0)
    with pytest.raises(PermissionDenied):
        eval_run_create(
            task=version.dataset.task,
            model_name=MODEL,
            model_kind="base",
            provider="openai",
            dataset_version=version,
            user=make_user("Reviewer"),
        )


def test_evaluate_command_runs_in_the_foreground_and_prints_metrics(settings, roles):
    from io import StringIO

    from django.core.management import call_command

    task = make_task()
    version = make_plan_dataset_version(task=task, n_validation=2, n_train=0)
    targets = targets_by_part(version)
    out = StringIO()
    with StandIn() as api:
        install_chat(api, lambda body: json.dumps(scaled(targets[part_number(body)], 1.1)))
        use_standin(settings, api)
        call_command(
            "evaluate",
            FT_MODEL,
            f"{version.dataset.name}:v{version.number}",
            "--kind",
            "fine_tuned",
            "--foreground",
            stdout=out,
        )
    text = out.getvalue()
    assert "prompt compact" in text and "status done, 2 ok" in text
    assert re.search(r"^  MAPE operations\[\]\.machine_time_min_per_piece +10\.0 % \(95 % CI", text, re.M), text


def test_evaluate_takes_the_version_as_every_command_does(settings, roles):
    from io import StringIO

    from django.core.management import CommandError, call_command

    version = make_plan_dataset_version(n_validation=1, n_train=0)
    name = version.dataset.name
    with pytest.raises(
        CommandError,
        match=rf"No dataset version '{name}:v3': give NAME:vN .*, NAME@N or the version id\. "
        rf"Versions of '{name}': {name}:v1 \(id {version.pk}\)\.",
    ):
        call_command("evaluate", MODEL, f"{name}:v3")
    with StandIn() as api:
        use_standin(settings, api)
        for ref in (f"{name}@1", str(version.pk)):  # the older spelling and the id still work (queued, not run)
            call_command("evaluate", MODEL, ref, stdout=StringIO())
    assert EvalRun.objects.filter(dataset_version=version).count() == 2


def test_chat_maps_sdk_errors_to_retryable_or_not():
    import openai

    from finetune.providers.base import Provider, ProviderError
    from finetune.providers.chat import OpenAIChatMixin
    from tests.openai_standin import Response

    with StandIn() as api:
        install_chat(api, lambda body: Reply(text='{"ok": true}', prompt_tokens=7, completion_tokens=3))

        class _Provider(OpenAIChatMixin, Provider):
            name = "test"
            client = openai.OpenAI(api_key="test", base_url=api.base_url, max_retries=0)

        provider = _Provider()
        api.script(
            "POST",
            "/chat/completions",
            api_error(429, "Rate limit reached", code="rate_limit_exceeded", headers={"retry-after": "3"}),
            api_error(429, "You exceeded your current quota", code="insufficient_quota", type_="insufficient_quota"),
            api_error(401, "Incorrect API key", code="invalid_api_key"),
            api_error(503, "overloaded", type_="server_error"),
            Response(
                200,
                {
                    "id": "x",
                    "object": "chat.completion",
                    "created": 0,
                    "model": "m",
                    "choices": [
                        {
                            "index": 0,
                            "finish_reason": "stop",
                            "message": {"role": "assistant", "content": None, "refusal": "I cannot do that."},
                        }
                    ],
                },
            ),
        )
        outcomes = []
        for _ in range(4):
            with pytest.raises(ProviderError) as caught:
                provider.chat(model="m", messages=[{"role": "user", "content": "hi"}])
            outcomes.append((caught.value.code, caught.value.retryable, caught.value.retry_after))
        refused = provider.chat(model="m", messages=[{"role": "user", "content": "hi"}])
        ok = provider.chat(model="m", messages=[{"role": "user", "content": "hi"}], json_output=False)
        bodies = [c.json() for c in api.calls_to("POST", "/chat/completions")]
    assert outcomes == [
        ("rate_limit_exceeded", True, 3.0),
        ("insufficient_quota", False, None),
        ("invalid_api_key", False, None),
        ("http_503", True, None),
    ]
    assert refused.refusal == "I cannot do that." and refused.text == ""
    assert (ok.text, ok.input_tokens, ok.output_tokens) == ('{"ok": true}', 7, 3) and ok.latency_ms >= 0
    assert bodies[0]["response_format"] == {"type": "json_object"} and "response_format" not in bodies[-1]


def test_admin_evaluate_form_queues_a_run_and_its_page_shows_progress(
    client, settings, roles, run_worker, django_capture_on_commit_callbacks
):
    task = make_task()
    version = make_plan_dataset_version(task=task, n_validation=2, n_train=0)
    targets = targets_by_part(version)
    client.force_login(make_user("Reviewer"))
    assert client.get("/admin/finetune/evalrun/evaluate/").status_code == 403
    client.force_login(make_user("Manager"))
    assert client.get("/admin/finetune/evalrun/add/")["Location"].endswith("/evalrun/evaluate/")
    with StandIn() as api:
        install_chat(api, lambda body: json.dumps(targets[part_number(body)]))
        use_standin(settings, api)
        with django_capture_on_commit_callbacks(execute=True):
            response = client.post(
                "/admin/finetune/evalrun/evaluate/",
                {
                    "task": task.pk,
                    "dataset_version": version.pk,
                    "split": "validation",
                    "model_name": MODEL,
                    "model_kind": "base",
                    "provider": "openai",
                },
            )
        run = EvalRun.objects.get()
        assert response.status_code == 302
        page = client.get(f"/admin/finetune/evalrun/{run.pk}/change/")
        live_url = f"/admin/finetune/evalrun/{run.pk}/live.json".encode()
        assert page.status_code == 200 and b"0 / 2" in page.content and b'data-live-url="' + live_url in page.content
        assert client.get(live_url.decode()).json() == {
            "status": "queued",
            "active": True,
            "fields": {"status": "Queued", "progress": "0 / 2"},
            "bars": {"progress": 0},
        }
        run_worker("openai")
    page = client.get(f"/admin/finetune/evalrun/{run.pk}/change/")
    assert b"2 / 2" in page.content and b"JSON validity" in page.content and b"data-live-url" not in page.content
    assert client.get(f"/admin/finetune/evalrun/{run.pk}/live.json").json()["active"] is False
    assert client.get("/admin/finetune/evalresult/").status_code == 200


def test_reconcile_requeues_runs_left_behind_and_leaves_live_ones(
    settings, manager, run_worker, django_capture_on_commit_callbacks
):
    from finetune.services.evals import eval_runs_reconcile

    task = make_task()
    version = make_plan_dataset_version(task=task, n_validation=2, n_train=0)
    targets = targets_by_part(version)
    with StandIn() as api:
        install_chat(api, lambda body: json.dumps(targets[part_number(body)]))
        use_standin(settings, api)
        with django_capture_on_commit_callbacks(execute=False):  # Redis "away" at commit: no job
            lost = eval_run_create(
                task=task, model_name=MODEL, model_kind="base", provider="openai", dataset_version=version, user=manager
            )
            live = eval_run_create(
                task=task,
                model_name=FT_MODEL,
                model_kind="fine_tuned",
                provider="openai",
                dataset_version=version,
                user=manager,
            )
        old = timezone.now() - timedelta(minutes=5)
        EvalRun.objects.filter(pk=lost.pk).update(created_at=old)
        EvalRun.objects.filter(pk=live.pk).update(
            status="running", started_at=timezone.now(), heartbeat_at=timezone.now()
        )
        with django_capture_on_commit_callbacks(execute=True):
            assert eval_runs_reconcile() == [lost.pk]
        with pytest.raises(EvalError, match="running"):
            eval_run_resume(eval_run=live, user=manager)
        run_worker("openai")
    lost.refresh_from_db()
    assert lost.status == EvalRun.Status.DONE and lost.done_count == 2


def test_a_run_without_an_api_key_fails_with_the_reason_on_the_row(
    settings, manager, run_worker, django_capture_on_commit_callbacks
):
    settings.OPENAI_API_KEY = ""
    version = make_plan_dataset_version(n_validation=1, n_train=0)
    with django_capture_on_commit_callbacks(execute=True):
        run = eval_run_create(
            task=version.dataset.task,
            model_name=MODEL,
            model_kind="base",
            provider="openai",
            dataset_version=version,
            user=manager,
        )
    run_worker("openai")
    run.refresh_from_db()
    assert run.status == EvalRun.Status.FAILED and "OPENAI_API_KEY" in run.error
    assert run.results.count() == 0
