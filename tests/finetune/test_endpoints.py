"""OpenAI-compatible endpoints: eval runs, promotion and estimates against a second stand-in acting as vLLM,
through the real openai SDK; keys read from the environment variable the endpoint names."""

import json
from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError
from django.core.management import CommandError, call_command

from finetune.metrics import usd
from finetune.models import EvalRun, ModelEndpoint
from finetune.services.estimates import EstimateFailed, estimate_create
from finetune.services.evals import EvalError, eval_run_create
from finetune.services.promotion import model_version_promote
from tests.factories import make_drawing, make_user, technology_target
from tests.finetune.evalkit import make_plan_dataset_version, use_standin
from tests.openai_standin import StandIn
from tests.openai_standin.chat import install_chat, part_number

pytestmark = pytest.mark.django_db
KEY_ENV = "GESTIMA_TEST_VLLM_KEY"
SERVED = "my-org/gestima-qwen2.5-vl-7b-ft"


@pytest.fixture
def manager(roles):
    return make_user("Manager")


@pytest.fixture
def servers(settings, monkeypatch):
    """Two stand-ins: OpenAI (settings) and a self-hosted server at another base URL (the endpoint)."""
    with StandIn() as openai_api, StandIn() as vllm:
        install_chat(openai_api, lambda body: json.dumps(technology_target(part_number(body), minutes=99.0)))
        install_chat(vllm, lambda body: json.dumps(technology_target(part_number(body), minutes=10.0 + 0.5)))
        use_standin(settings, openai_api)
        monkeypatch.setenv(KEY_ENV, "vllm-secret-from-env")
        yield openai_api, vllm


def make_endpoint(base_url, *, priced=True, name="vllm-gpu-box"):
    return ModelEndpoint.objects.create(
        name=name,
        base_url=base_url,
        model_name=SERVED,
        api_key_env=KEY_ENV,
        input_price_per_1m=Decimal("0.20") if priced else None,
        output_price_per_1m=Decimal("0.60") if priced else None,
    )


def test_an_eval_run_asks_the_endpoint_with_the_key_from_its_variable(
    servers, manager, run_worker, django_capture_on_commit_callbacks
):
    openai_api, vllm = servers
    version = make_plan_dataset_version(n_validation=3, n_train=0)
    endpoint = make_endpoint(vllm.base_url)
    with django_capture_on_commit_callbacks(execute=True):
        run = eval_run_create(
            task=version.dataset.task,
            model_name="",
            model_kind="fine_tuned",
            provider="openai",
            dataset_version=version,
            user=manager,
            endpoint=endpoint,
        )
    run_worker("openai")

    run.refresh_from_db()
    assert run.status == EvalRun.Status.DONE, run.error
    assert run.provider == "compatible" and run.model_name == SERVED and run.endpoint == endpoint
    calls = vllm.calls_to("POST", "/chat/completions")
    assert len(calls) == 3 and not openai_api.calls_to("POST", "/chat/completions")
    assert {c.json()["model"] for c in calls} == {SERVED}
    assert {c.headers.get("authorization") for c in calls} == {"Bearer vllm-secret-from-env"}
    assert run.done_count == 3 and run.metrics["n_evaluated"] == 3
    # 3 answers × (100 input × $0.20 + 20 output × $0.60) per 1M tokens, the endpoint's own prices.
    assert run.cost_usd == Decimal("3") * (100 * Decimal("0.20") + 20 * Decimal("0.60")) / 1_000_000


def test_a_variable_that_is_not_set_is_refused_by_name(
    servers, manager, monkeypatch, run_worker, django_capture_on_commit_callbacks
):
    _, vllm = servers
    version = make_plan_dataset_version(n_validation=2, n_train=0)
    endpoint = make_endpoint(vllm.base_url)
    monkeypatch.delenv(KEY_ENV)
    with pytest.raises(EvalError, match=f"{KEY_ENV} .*is not set"):
        eval_run_create(
            task=version.dataset.task,
            model_name="",
            model_kind="base",
            provider="openai",
            dataset_version=version,
            user=manager,
            endpoint=endpoint,
        )
    assert not EvalRun.objects.exists()

    # Set when the run was queued, gone where the worker runs: the run fails saying which variable.
    monkeypatch.setenv(KEY_ENV, "k")
    with django_capture_on_commit_callbacks(execute=True):
        run = eval_run_create(
            task=version.dataset.task,
            model_name="",
            model_kind="base",
            provider="openai",
            dataset_version=version,
            user=manager,
            endpoint=endpoint,
        )
    monkeypatch.delenv(KEY_ENV)
    run_worker("openai")
    run.refresh_from_db()
    assert run.status == EvalRun.Status.FAILED and KEY_ENV in run.error
    assert not vllm.calls_to("POST", "/chat/completions")


def test_the_compatible_provider_without_an_endpoint_is_refused(manager):
    version = make_plan_dataset_version(n_validation=1, n_train=0)
    with pytest.raises(EvalError, match="needs a model endpoint"):
        eval_run_create(
            task=version.dataset.task,
            model_name="x",
            model_kind="base",
            provider="compatible",
            dataset_version=version,
            user=manager,
        )


def test_unknown_prices_are_unknown_never_zero(servers, manager, run_worker, django_capture_on_commit_callbacks):
    _, vllm = servers
    version = make_plan_dataset_version(n_validation=2, n_train=0)
    endpoint = make_endpoint(vllm.base_url, priced=False)
    with django_capture_on_commit_callbacks(execute=True):
        run = eval_run_create(
            task=version.dataset.task,
            model_name="",
            model_kind="base",
            provider="openai",
            dataset_version=version,
            user=manager,
            endpoint=endpoint,
        )
    run_worker("openai")
    run.refresh_from_db()
    assert run.status == EvalRun.Status.DONE and run.cost_usd is None and usd(run.cost_usd) == "unknown"


def test_a_promoted_endpoint_model_answers_estimates_from_the_endpoint(
    servers, manager, run_worker, django_capture_on_commit_callbacks
):
    openai_api, vllm = servers
    version = make_plan_dataset_version(n_validation=2, n_train=0)
    endpoint = make_endpoint(vllm.base_url)
    with django_capture_on_commit_callbacks(execute=True):
        run = eval_run_create(
            task=version.dataset.task,
            model_name="",
            model_kind="fine_tuned",
            provider="openai",
            dataset_version=version,
            user=manager,
            endpoint=endpoint,
        )
    run_worker("openai")
    model_version = model_version_promote(
        eval_run=EvalRun.objects.get(pk=run.pk), user=manager, override_reason="endpoint test on a small evaluation set"
    )
    assert model_version.endpoint == endpoint and model_version.provider == "compatible"
    assert f"- Endpoint: `vllm-gpu-box` at {vllm.base_url}" in model_version.model_card
    assert "vllm-secret-from-env" not in model_version.model_card + str(model_version.report)

    estimate = estimate_create(drawing=make_drawing(part_number="NEW-700"), task=version.dataset.task, user=manager)
    assert estimate.error == "" and estimate.model_name == SERVED
    assert estimate.output["operations"][0]["machine_time_min_per_piece"] == 10.5  # the endpoint's answer
    assert vllm.calls_to("POST", "/chat/completions")[-1].json()["model"] == SERVED
    assert not openai_api.calls_to("POST", "/chat/completions")
    assert estimate.cost_usd == (100 * Decimal("0.20") + 20 * Decimal("0.60")) / 1_000_000

    ModelEndpoint.objects.filter(pk=endpoint.pk).update(api_key_env="GESTIMA_TEST_NOT_SET")
    with pytest.raises(EstimateFailed, match="GESTIMA_TEST_NOT_SET"):
        estimate_create(drawing=make_drawing(part_number="NEW-701"), task=version.dataset.task, user=manager)


def test_the_evaluate_command_takes_an_endpoint_by_name(servers, manager, capsys):
    _, vllm = servers
    version = make_plan_dataset_version(n_validation=2, n_train=0)
    make_endpoint(vllm.base_url)
    call_command("evaluate", "--endpoint", "vllm-gpu-box", str(version.pk), "--foreground")
    out = capsys.readouterr().out
    assert f"{SERVED} (base)" in out and f"endpoint: vllm-gpu-box at {vllm.base_url}" in out and "status done" in out
    assert len(vllm.calls_to("POST", "/chat/completions")) == 2
    with pytest.raises(CommandError, match="No model endpoint named 'nope'; known: vllm-gpu-box"):
        call_command("evaluate", "--endpoint", "nope", str(version.pk))


def test_an_endpoint_stores_a_variable_name_never_a_key(db):
    endpoint = ModelEndpoint(
        name="ollama", base_url="http://gpu-box:11434/v1", model_name="qwen2.5vl:7b", api_key_env="sk-proj-abc123"
    )
    with pytest.raises(ValidationError) as caught:
        endpoint.full_clean()
    assert "api_key_env" in caught.value.message_dict
    endpoint.api_key_env = "OLLAMA_KEY"
    endpoint.full_clean()  # a bare host name is a valid base URL


def test_managers_edit_endpoints_reviewers_do_not(client, manager):
    reviewer = make_user("Reviewer")
    client.force_login(manager)
    response = client.post(
        "/admin/finetune/modelendpoint/add/",
        {
            "name": "together-qwen",
            "base_url": "https://api.together.xyz/v1",
            "model_name": "Qwen/Qwen2.5-VL-72B-Instruct",
            "api_key_env": "TOGETHER_API_KEY",
            "input_price_per_1m": "",
            "output_price_per_1m": "",
            "notes": "",
        },
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    listing = client.get("/admin/finetune/modelendpoint/").content.decode()
    assert "together-qwen" in listing and "unknown" in listing
    client.force_login(reviewer)
    assert client.get("/admin/finetune/modelendpoint/add/").status_code == 403
