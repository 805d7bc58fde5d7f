"""The OpenAI and Azure providers through the real SDK against the stand-in: retries, errors, pagination, results."""

import base64
import time
from pathlib import Path

import pytest

from finetune.providers.base import ProviderError, get_provider
from finetune.providers.fine_tuning import result_csv_rows
from tests.openai_standin.base import api_error
from tests.openai_standin.fine_tuning import quota_error, rate_limited, server_error

JOBS = "/fine_tuning/jobs"


@pytest.fixture
def provider(ft_api):
    return get_provider("openai")


@pytest.fixture
def training_file(provider, tmp_path):
    path = tmp_path / "train.jsonl"
    path.write_text('{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}\n')
    return provider.upload_file(path=path).id


def _create(provider, training_file, run_id="7"):
    return provider.create_job(
        model="gpt-4o-mini-2024-07-18",
        training_file=training_file,
        hyperparameters={"n_epochs": "auto"},
        metadata={"gestima_run_id": run_id},
    )


def test_rate_limit_is_retried_honouring_retry_after(provider, ft_api, training_file, settings):
    settings.OPENAI_RETRY_AFTER_MAX_SECONDS = 5
    ft_api.script("GET", JOBS + "/[^/]+", rate_limited("0.3"))
    job = _create(provider, training_file)
    started = time.monotonic()
    assert provider.retrieve_job(job.id).id == job.id
    assert time.monotonic() - started >= 0.3  # waited as the server asked
    assert len(ft_api.calls_to("GET", JOBS + "/[^/]+")) == 2


@pytest.mark.parametrize("code", ["insufficient_quota", "daily_rate_limit_exceeded"])
def test_quota_429s_are_not_retried(provider, ft_api, training_file, code):
    response = quota_error()
    response.body["error"]["code"] = code
    ft_api.script("POST", JOBS, response)
    with pytest.raises(ProviderError) as caught:
        _create(provider, training_file)
    assert caught.value.code == code and not caught.value.retryable
    assert len(ft_api.calls_to("POST", JOBS)) == 1


def test_5xx_is_retried_but_create_is_sent_once(provider, ft_api, training_file):
    ft_api.script("GET", JOBS + "/[^/]+", server_error(), server_error())
    job = _create(provider, training_file)
    assert provider.retrieve_job(job.id).status == "queued"  # the stand-in moves one step per retrieve
    ft_api.script("POST", JOBS, server_error())
    with pytest.raises(ProviderError) as caught:
        _create(provider, training_file)  # the service, not the provider, decides to look up and resend
    assert caught.value.retryable
    assert len(ft_api.calls_to("POST", JOBS)) == 2


@pytest.mark.parametrize("status", [400, 401, 403, 404, 422])
def test_client_errors_are_not_retried_and_keep_the_message_whole(provider, ft_api, training_file, status):
    message = f"Error {status}: training_file file-abc has 3 examples; at least 10 are required (line 4, message 2)."
    ft_api.script("GET", JOBS + "/[^/]+", api_error(status, message, code="invalid_n_examples", param="training_file"))
    with pytest.raises(ProviderError) as caught:
        provider.retrieve_job("ftjob-x")
    assert caught.value.message == message and caught.value.param == "training_file"
    assert not caught.value.retryable
    assert len(ft_api.calls_to("GET", JOBS + "/[^/]+")) == 1


def test_connection_errors_are_retryable(settings):
    settings.OPENAI_API_KEY = "sk-test"
    settings.OPENAI_BASE_URL = "http://127.0.0.1:9/v1"  # nothing listens on the discard port
    settings.OPENAI_MAX_ATTEMPTS = 2
    settings.OPENAI_BACKOFF_BASE_SECONDS = 0.01
    with pytest.raises(ProviderError) as caught:
        get_provider("openai").retrieve_job("ftjob-1")
    assert caught.value.retryable and caught.value.code == "connection_error"


def test_find_job_matches_metadata_even_when_the_server_ignores_the_filter(provider, ft_api, training_file):
    ft_api.fine_tuning.apply_metadata_filter = False
    ours = _create(provider, training_file, run_id="42")
    _create(provider, training_file, run_id="43")
    _create(provider, training_file, run_id="420")
    assert provider.find_job(run_id=42).id == ours.id
    assert provider.find_job(run_id=99) is None
    assert "metadata[gestima_run_id]" in str(ft_api.calls_to("GET", JOBS)[-1].query)


def test_events_page_with_after_and_stop_at_known_ones(provider, ft_api, training_file):
    job = _create(provider, training_file)
    for n in range(250):
        ft_api.fine_tuning._event(job.id, f"event {n}")
    events = provider.list_events(job.id)
    assert len(events) == 251 and events[-1].message == "event 249"  # oldest first
    assert len(ft_api.calls_to("GET", JOBS + "/[^/]+/events")) == 3
    ft_api.fine_tuning._event(job.id, "new one")
    new = provider.list_events(job.id, known_ids={e.id for e in events})
    assert [e.message for e in new] == ["new one"]


def test_result_file_is_read_plain_or_base64():
    csv_text = "step,train_loss,train_accuracy,valid_loss,valid_mean_token_accuracy\n1,1.5,0.6,,\n2,1.2,0.7,1.3,0.65\n"
    for content in (
        csv_text.encode(),
        base64.b64encode(csv_text.encode()),
        base64.b64encode(csv_text.encode()).decode(),
    ):
        rows = result_csv_rows(content)
        assert [r["step"] for r in rows] == [1.0, 2.0]
        assert rows[0]["valid_loss"] is None and rows[1]["valid_mean_token_accuracy"] == 0.65


def test_multipart_upload_sends_ordered_parts(provider, ft_api, settings, tmp_path):
    settings.OPENAI_UPLOAD_PART_THRESHOLD = 100
    settings.OPENAI_UPLOAD_PART_SIZE = 64
    data = b"".join(f'{{"messages": [{{"role": "user", "content": "{n}"}}]}}\n'.encode() for n in range(20))
    path = Path(tmp_path / "big.jsonl")
    path.write_bytes(data)
    remote = provider.upload_file(path=path)
    assert remote.multipart
    assert ft_api.fine_tuning.file_bytes[remote.id] == data
    assert len(ft_api.calls_to("POST", "/uploads/[^/]+/parts")) == -(-len(data) // 64)
    assert not ft_api.calls_to("POST", "/files")


def test_azure_provider_uses_the_azure_client(ft_api, settings, tmp_path):
    settings.AZURE_OPENAI_ENDPOINT = ft_api.base_url[: -len("/v1")]
    settings.AZURE_OPENAI_API_KEY = "azure-test-key"
    settings.AZURE_OPENAI_API_VERSION = "2025-04-01-preview"
    provider = get_provider("azure")
    path = tmp_path / "train.jsonl"
    path.write_text('{"messages": []}\n')
    file_id = provider.upload_file(path=path).id
    job = provider.create_job(
        model="gpt-4o-mini-2024-07-18", training_file=file_id, hyperparameters={}, metadata={"gestima_run_id": "1"}
    )
    assert provider.retrieve_job(job.id).id == job.id
    call = ft_api.calls_to("POST", "/openai/fine_tuning/jobs")[0]
    assert call.headers.get("api-key") == "azure-test-key"
    assert call.query["api-version"] == ["2025-04-01-preview"]


def test_missing_key_is_a_clear_error_not_a_crash(settings):
    settings.OPENAI_API_KEY = ""
    with pytest.raises(ProviderError, match="OPENAI_API_KEY is not set"):
        get_provider("openai").retrieve_job("ftjob-1")
    assert get_provider().name == "dryrun"
