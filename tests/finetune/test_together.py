"""Together AI runs end to end: the real `together` SDK over HTTP to the stand-in, a real RQ worker, the services'
rules."""

from decimal import Decimal
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command
from django.urls import reverse

from curation.models import BaseModel
from finetune.models import RunCheckpoint, RunEvent, RunMetric, TrainingRun
from finetune.providers.base import ProviderError, get_provider
from finetune.providers.together_format import STATUS_MAP, job_suffix, run_id_of
from finetune.services.run_cancel import training_run_cancel, training_run_relaunch
from finetune.services.run_doctor import training_runs_doctor
from finetune.services.run_launch import training_run_create, training_run_launch
from finetune.services.run_sync import training_run_sync, training_runs_sync_all
from tests.together_standin import TogetherAPI, TogetherStandIn
from tests.together_standin.api import credit_429, payment_required, rate_limited, server_error
from tests.finetune.runkit import launch as _launch, sync_until_done as _sync_until_done

pytestmark = pytest.mark.django_db

FILES = "/files"
JOBS = "/fine-tunes"
QWEN = "Qwen/Qwen3-VL-8B-Instruct"


@pytest.fixture
def tg_api(settings):
    """The Together stand-in; the real SDK reaches it through TOGETHER_BASE_URL (the host, no /v1)."""
    with TogetherStandIn() as api:
        TogetherAPI().install(api)
        settings.TOGETHER_API_KEY = "tg-test-not-a-real-key"
        settings.TOGETHER_BASE_URL = api.base_url
        settings.OPENAI_API_KEY = ""
        settings.OPENAI_TIMEOUT_SECONDS = 5
        settings.OPENAI_MAX_ATTEMPTS = 4
        settings.OPENAI_BACKOFF_BASE_SECONDS = 0.01
        settings.OPENAI_BACKOFF_MAX_SECONDS = 0.05
        settings.OPENAI_RETRY_AFTER_MAX_SECONDS = 0.2
        yield api


@pytest.fixture
def qwen(db):
    """Seeded by curation's data migration: Together's vision model, its training price unknown."""
    return BaseModel.objects.get(name=QWEN)


def _create(version, base_model, manager, **kwargs):
    kwargs.setdefault("provider", "together")
    return training_run_create(dataset_version=version, base_model=base_model, user=manager, **kwargs)


def test_the_migration_seeds_togethers_vision_models_with_unknown_prices(db):
    rows = {m.name: m for m in BaseModel.objects.filter(provider="together")}
    for name in (
        QWEN,
        "google/gemma-3-12b-it-VLM",
        "google/gemma-3-27b-it-VLM",
        "meta-llama/Llama-4-Scout-17B-16E-Instruct-VLM",
    ):
        assert name in rows
        assert rows[name].supports_vision
        assert rows[name].training_price_per_1m is None  # not published: unknown, never $0


def test_a_together_run_trains_and_brings_back_events_loss_curve_checkpoints_and_the_model(
    tg_api, version, qwen, manager, run_worker, django_capture_on_commit_callbacks
):
    run = _create(version, qwen, manager, suffix="Drawings v2")
    assert run.n_epochs == "3"  # Together has no "auto": the dataset's epochs, as the estimate assumes
    # Together bills the validation pass too: 10 × 1000 tokens × 3 epochs + 1 eval × 2 × 1000 tokens.
    assert run.estimated_tokens == 32_000 and run.estimated_cost_usd is None  # unknown, not $0
    assert run.provider_options["training_type"] == "lora"

    run = _launch(run, manager, run_worker, django_capture_on_commit_callbacks)
    assert run.job_id and run.training_file_id and run.validation_file_id
    assert run.status == "queued"
    # The upload went the SDK's way: a redirect, a presigned PUT, then the call that starts validation.
    assert len(tg_api.calls_to("PUT", "/_presigned/[^/]+")) == 2
    assert len(tg_api.calls_to("POST", FILES + "/[^/]+/preprocess")) == 2
    created = tg_api.calls_to("POST", JOBS)
    assert len(created) == 1
    body = created[0].json()
    assert body["model"] == QWEN and body["n_epochs"] == 3
    assert body["suffix"] == f"drawings-v2-gr{run.pk}"
    assert body["training_type"]["type"] == "Lora" and body["n_checkpoints"] == 1
    assert body["validation_file"] == run.validation_file_id and body["n_evals"] >= 1
    assert body["multimodal_params"] == {"train_vision": False}
    sent = tg_api.together.file_bytes[run.training_file_id]
    assert sent == (Path(run.run_dir) / "train.jsonl").read_bytes()

    run = _sync_until_done(run)
    assert run.status == "succeeded"
    output = tg_api.together.jobs[run.job_id]["model_output_name"]
    assert run.fine_tuned_model == output and f"gr{run.pk}" in output
    assert run.trained_tokens == 120_000
    assert run.actual_cost_usd is None  # no price: the cost stays unknown
    assert [t["status"] for t in run.timeline] == ["draft", "uploading", "queued", "running", "succeeded"]
    steps = list(RunMetric.objects.filter(run=run).order_by("step"))
    assert [m.step for m in steps] == [1, 2, 3, 4, 5, 6]
    assert steps[0].train_loss == 2.0 and steps[1].valid_loss == 1.1 and steps[0].valid_loss is None
    messages = list(RunEvent.objects.filter(run=run).values_list("message", flat=True))
    assert "Training started" in messages and "Job completed" in messages
    count = RunEvent.objects.filter(run=run).count()
    training_run_sync(run=run)
    assert RunEvent.objects.filter(run=run).count() == count  # each event once, however often we sync
    assert RunCheckpoint.objects.filter(run=run).count() == 2
    assert run.sync_error == ""


def test_full_fine_tuning_and_more_checkpoints_are_sent_as_asked(
    tg_api, version, qwen, manager, run_worker, django_capture_on_commit_callbacks
):
    run = _create(
        version,
        qwen,
        manager,
        n_epochs=2,
        learning_rate_multiplier="2",
        provider_options={"training_type": "full", "n_checkpoints": 3},
    )
    _launch(run, manager, run_worker, django_capture_on_commit_callbacks)
    body = tg_api.calls_to("POST", JOBS)[0].json()
    assert body["training_type"]["type"] == "Full"
    assert body["n_checkpoints"] == 3 and body["n_epochs"] == 2
    assert body["learning_rate"] == pytest.approx(2e-5)  # the multiplier times Together's default 1e-5


def test_unknown_options_are_refused_before_anything_is_sent(tg_api, version, qwen, manager, base_model):
    from finetune.services.run_state import TrainingRunError

    with pytest.raises(
        TrainingRunError, match="gpt-4o-mini-2024-07-18 is a base model of openai: the together provider"
    ):
        _create(version, base_model, manager)
    with pytest.raises(TrainingRunError, match="the openai provider cannot train it"):
        _create(version, qwen, manager, provider="openai")

    with pytest.raises(TrainingRunError, match="training_type must be lora or full"):
        _create(version, qwen, manager, provider_options={"training_type": "qlora"})
    with pytest.raises(TrainingRunError, match="takes no provider options"):
        _create(version, qwen, manager, provider="dryrun", provider_options={"training_type": "full"})
    assert tg_api.calls == []


@pytest.mark.parametrize("fault", ["500", "timeout"])
def test_a_create_whose_answer_is_lost_is_found_by_its_suffix_not_sent_twice(
    tg_api, version, qwen, manager, run_worker, django_capture_on_commit_callbacks, settings, fault
):
    if fault == "500":
        tg_api.together.create_lands_then_500 = 1
    else:  # the job is made, the answer comes after the client gave up
        settings.OPENAI_TIMEOUT_SECONDS = 1
        tg_api.together.timeout_delay = 2.5
        tg_api.together.create_lands_then_timeout = 1
    run = _launch(_create(version, qwen, manager), manager, run_worker, django_capture_on_commit_callbacks)
    assert run.job_id
    assert len(tg_api.together.jobs) == 1
    assert len(tg_api.calls_to("POST", JOBS)) == 1
    assert any("found by metadata after" in e.get("note", "") for e in run.timeline)


def test_rate_limits_and_overload_are_retried_then_the_run_goes_on(
    tg_api, version, qwen, manager, run_worker, django_capture_on_commit_callbacks
):
    tg_api.script("POST", FILES, rate_limited("0"), server_error(503))
    tg_api.script("POST", JOBS, rate_limited("0"))
    run = _launch(_create(version, qwen, manager), manager, run_worker, django_capture_on_commit_callbacks)
    assert run.job_id and run.status == "queued"
    assert len(tg_api.together.jobs) == 1
    assert len(tg_api.calls_to("POST", JOBS)) == 2


@pytest.mark.parametrize(
    "answer, code", [(payment_required, "insufficient_balance"), (credit_429, "insufficient_quota")]
)
def test_an_empty_balance_on_create_fails_clearly_and_is_not_retried(
    tg_api, version, qwen, manager, run_worker, django_capture_on_commit_callbacks, answer, code
):
    tg_api.script("POST", JOBS, answer())
    run = _launch(_create(version, qwen, manager), manager, run_worker, django_capture_on_commit_callbacks)
    assert run.status == "failed" and run.job_id is None
    assert run.error_code == code
    assert run.error_message == answer().body["error"]["message"]  # Together's words, whole
    assert len(tg_api.calls_to("POST", JOBS)) == 1


@pytest.mark.parametrize("inline_events", [True, False])
def test_a_user_error_keeps_togethers_reason_and_a_relaunch_reuses_the_files(
    tg_api, version, qwen, manager, run_worker, django_capture_on_commit_callbacks, inline_events
):
    message = "Line 4: the image in message 1 is 11.2 MB, above the 10 MB limit."
    tg_api.together.fail_jobs_with = ("user_error", message)
    tg_api.together.inline_events = inline_events  # the reason is read from the events endpoint otherwise
    run = _sync_until_done(
        _launch(_create(version, qwen, manager), manager, run_worker, django_capture_on_commit_callbacks)
    )
    assert run.status == "failed"
    assert (run.error_code, run.error_message) == ("user_error", message)
    uploads = len(tg_api.calls_to("POST", FILES))

    tg_api.together.fail_jobs_with = None
    again = _launch(
        training_run_relaunch(run=run, user=manager), manager, run_worker, django_capture_on_commit_callbacks
    )
    assert again.job_id != run.job_id and again.training_file_id == run.training_file_id
    assert again.provider_options == run.provider_options
    assert len(tg_api.calls_to("POST", FILES)) == uploads
    assert _sync_until_done(again).status == "succeeded"


@pytest.mark.parametrize("inline_events", [True, False])
def test_a_job_cancelled_by_the_balance_check_says_so(
    tg_api, version, qwen, manager, run_worker, django_capture_on_commit_callbacks, inline_events
):
    tg_api.together.cancel_for_balance = True
    tg_api.together.inline_events = inline_events
    run = _sync_until_done(
        _launch(_create(version, qwen, manager), manager, run_worker, django_capture_on_commit_callbacks)
    )
    assert run.status == "cancelled"
    assert run.error_code == "insufficient_balance"
    assert "Insufficient balance" in run.error_message


def test_5xx_during_sync_keeps_the_state_and_notes_the_problem(
    tg_api, version, qwen, manager, run_worker, django_capture_on_commit_callbacks, settings
):
    run = _launch(_create(version, qwen, manager), manager, run_worker, django_capture_on_commit_callbacks)
    settings.OPENAI_MAX_ATTEMPTS = 1
    tg_api.script("GET", JOBS + "/[^/]+", server_error(524))
    run = training_run_sync(run=run)
    assert run.status == "queued" and "overloaded" in run.sync_error
    run = training_run_sync(run=run)
    assert run.sync_error == "" and tg_api.together.jobs[run.job_id]["status"] == "queued"  # pending -> queued
    assert training_run_sync(run=run).status == "running"


def test_cancel_asks_together_and_the_next_sync_sees_it_cancelled(
    tg_api, version, qwen, manager, run_worker, django_capture_on_commit_callbacks
):
    run = _launch(_create(version, qwen, manager), manager, run_worker, django_capture_on_commit_callbacks)
    run = training_run_cancel(run=run, user=manager)
    assert run.status == "cancel_requested" and not run.is_terminal
    assert len(tg_api.calls_to("POST", JOBS + "/[^/]+/cancel")) == 1
    run = training_run_sync(run=run)
    assert run.status == "cancelled" and run.error_code == ""  # cancelled by us: no failure to explain


def test_a_worker_that_died_after_the_create_is_adopted_by_the_next_sync(
    tg_api, version, qwen, manager, run_worker, django_capture_on_commit_callbacks
):
    import together

    run = _create(version, qwen, manager)
    with django_capture_on_commit_callbacks(execute=False):
        run = training_run_launch(run=run, user=manager)
    # The dead worker's job: made with our run tag in its suffix, the row knows nothing of it.
    client = together.Together(api_key="tg-test", base_url=tg_api.base_url, max_retries=0)
    path = Path(version.pk and __file__).with_name("tg_orphan.jsonl")
    try:
        path.write_text('{"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]}\n')
        file_id = client.files.upload(file=path, purpose="fine-tune").id
    finally:
        path.unlink()
    remote = client.fine_tuning.create(model=QWEN, training_file=file_id, suffix=job_suffix(suffix="", run_id=run.pk))
    TrainingRun.objects.filter(pk=run.pk).update(worker_claimed_at="2026-01-01T00:00:00Z")

    with django_capture_on_commit_callbacks(execute=True):
        training_runs_sync_all()
    run_worker("openai")
    run.refresh_from_db()
    assert run.job_id == remote.id
    assert len(tg_api.calls_to("POST", JOBS)) == 1
    report = training_runs_doctor(provider_name="together")
    assert report["orphans"] == [] and report["duplicates"] == []


def test_the_run_tag_is_read_back_from_suffixes_and_never_confused():
    assert job_suffix(suffix="Drawings: batch #7!", run_id=12) == "drawings-batch-7-gr12"
    assert len(job_suffix(suffix="x" * 80, run_id=123456)) == 40
    assert run_id_of(job_suffix(suffix="x" * 80, run_id=123456)) == "123456"
    assert run_id_of("drawings-gr12") == "12" and run_id_of("drawings-gr112") == "112"
    assert run_id_of("grocery") == "" and run_id_of("") == ""


def test_every_together_status_maps_onto_ours_and_the_failures_are_terminal():
    terminal = TrainingRun.Status.TERMINAL
    for status in ("error", "user_error", "failed", "cancelled", "completed"):
        assert STATUS_MAP[status] in terminal
    for status in ("pending", "queued", "running", "compressing", "uploading", "cancel_requested"):
        assert STATUS_MAP[status] not in terminal
    assert STATUS_MAP["uploading"] == "running"  # Together uploading the model, not our files
    assert STATUS_MAP["completed"] == "succeeded"


def test_the_upload_reports_a_file_together_refuses(tg_api, tmp_path):
    provider = get_provider("together")
    not_json = tmp_path / "bad.jsonl"
    not_json.write_text("this is not json\n")
    with pytest.raises(ProviderError) as caught:
        provider.upload_file(path=not_json)
    assert caught.value.code == "invalid_file" and not caught.value.retryable
    no_messages = tmp_path / "train.jsonl"
    no_messages.write_text('{"prompt": "hi"}\n')
    with pytest.raises(ProviderError, match="Line 1: no messages list") as caught:
        provider.upload_file(path=no_messages)
    assert caught.value.code == "invalid_file"


def test_chat_goes_to_togethers_chat_api(tg_api):
    tg_api.together.chat_answer = lambda body: '{"total_min": 12.5}'
    provider = get_provider("together")
    provider.chat_prepare()
    result = provider.chat(
        model="standin-user/Qwen3-VL-8B-Instruct-gr1-abc",
        messages=[{"role": "user", "content": [{"type": "text", "text": "part P-1"}]}],
    )
    assert result.text == '{"total_min": 12.5}' and result.input_tokens == 120 and result.output_tokens == 15
    call = tg_api.calls_to("POST", "/chat/completions")[0]
    assert call.json()["response_format"] == {"type": "json_object"}
    assert call.headers["authorization"] == "Bearer tg-test-not-a-real-key"
    tg_api.script("POST", "/chat/completions", payment_required())
    with pytest.raises(ProviderError) as caught:
        provider.chat(model="m", messages=[{"role": "user", "content": "hi"}])
    assert caught.value.code == "insufficient_balance" and not caught.value.retryable


def test_without_a_key_the_provider_says_so(settings):
    settings.TOGETHER_API_KEY = ""
    with pytest.raises(ProviderError, match="TOGETHER_API_KEY is not set"):
        get_provider("together").retrieve_job("ft-x")


def test_the_launch_form_offers_together_only_when_configured(client, manager, settings):
    client.force_login(manager)
    settings.TOGETHER_API_KEY = ""
    page = client.get(reverse("admin:finetune_trainingrun_add")).content.decode()
    assert '<option value="together"' not in page
    settings.TOGETHER_API_KEY = "tg-test"
    page = client.get(reverse("admin:finetune_trainingrun_add")).content.decode()
    assert '<option value="together"' in page and 'name="training_type"' in page


def test_the_launch_form_creates_a_full_together_run(client, manager, version, qwen, settings):
    settings.TOGETHER_API_KEY = "tg-test"
    client.force_login(manager)
    response = client.post(
        reverse("admin:finetune_trainingrun_add"),
        {
            "dataset_version": version.pk,
            "base_model": qwen.pk,
            "provider": "together",
            "n_epochs": "2",
            "batch_size": "auto",
            "learning_rate_multiplier": "auto",
            "suffix": "",
            "training_type": "full",
        },
    )
    assert response.status_code == 302
    run = TrainingRun.objects.get()
    assert run.provider == "together" and run.provider_options["training_type"] == "full"
    page = client.get(reverse("admin:finetune_trainingrun_launch", args=[run.pk])).content.decode()
    assert "unknown (no training price for this model)" in page and "$0.00" not in page


def test_launch_run_command_takes_provider_together(tg_api, version, qwen, manager, run_worker):
    out = StringIO()
    call_command(
        "launch_run",
        str(version.pk),
        QWEN,
        "--provider",
        "together",
        "--training-type",
        "full",
        "--n-checkpoints",
        "2",
        stdout=out,
    )
    text = out.getvalue()
    assert "cost unknown" in text and "launched (together)" in text
    run = TrainingRun.objects.get()
    assert run.provider_options == {"training_type": "full", "n_checkpoints": 2, "n_evals": 0, "train_vision": False}


def test_a_budget_cannot_be_checked_against_an_unknown_price(tg_api, version, qwen, manager):
    from finetune.services.run_state import TrainingRunError

    run = _create(version, qwen, manager, budget_usd=Decimal("10"))
    with pytest.raises(TrainingRunError, match="training price of Qwen/Qwen3-VL-8B-Instruct is not known"):
        training_run_launch(run=run, user=manager)


def test_an_evaluation_of_a_together_fine_tuned_model_asks_togethers_chat(
    tg_api, manager, run_worker, django_capture_on_commit_callbacks
):
    import json

    from finetune.models import EvalRun
    from finetune.services.evals import eval_run_create
    from tests.factories import make_task
    from tests.finetune.evalkit import make_plan_dataset_version, targets_by_part
    from tests.openai_standin.chat import part_number

    task = make_task()
    version = make_plan_dataset_version(task=task, n_validation=3)
    targets = targets_by_part(version)
    tg_api.together.chat_answer = lambda body: json.dumps(targets[part_number(body)])
    model = "standin-user/Qwen3-VL-8B-Instruct-drawings-gr7-abcd1234"
    with django_capture_on_commit_callbacks(execute=True):
        run = eval_run_create(
            task=task,
            model_name=model,
            model_kind="fine_tuned",
            provider="together",
            dataset_version=version,
            user=manager,
        )
    run_worker("openai")
    run.refresh_from_db()
    assert run.status == EvalRun.Status.DONE, run.error
    calls = tg_api.calls_to("POST", "/chat/completions")
    assert len(calls) == 3 and all(c.path == "/chat/completions" for c in calls)
    body = calls[0].json()
    assert body["model"] == model
    images = [p for p in body["messages"][1]["content"] if p["type"] == "image_url"]
    assert images and images[0]["image_url"]["url"].startswith("data:image/png;base64,")
    assert run.metrics["json_validity"]["value"] == 1.0 and run.error_count == 0


@pytest.mark.parametrize(
    "answer, code, retryable",
    [
        (lambda: server_error(524), "http_524", True),
        (lambda: server_error(529), "http_529", True),
        (lambda: rate_limited("0"), "rate_limit_exceeded", True),
        (payment_required, "insufficient_balance", False),
        (credit_429, "insufficient_quota", False),
    ],
)
def test_togethers_errors_are_classified_retryable_or_not_with_their_words(tg_api, settings, answer, code, retryable):
    settings.OPENAI_MAX_ATTEMPTS = 1
    tg_api.script("GET", JOBS + "/[^/]+", answer())
    with pytest.raises(ProviderError) as caught:
        get_provider("together").retrieve_job("ft-any")
    assert (caught.value.code, caught.value.retryable) == (code, retryable)
    assert caught.value.message == answer().body["error"]["message"]


def test_a_vanished_job_is_a_404_for_ft_doctor(tg_api):
    with pytest.raises(ProviderError) as caught:
        get_provider("together").retrieve_job("ft-gone")
    assert caught.value.http_status == 404 and not caught.value.retryable
