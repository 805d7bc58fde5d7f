"""Fixtures for the training-run tests: the stand-in API wired through settings, a manager, a version."""

import pytest

from tests.factories import make_base_model, make_dataset_version, make_user
from tests.openai_standin import StandIn
from tests.openai_standin.fine_tuning import FineTuningAPI


@pytest.fixture
def ft_api(settings):
    """The stand-in with the fine-tuning routes; the real SDK reaches it through OPENAI_BASE_URL."""
    with StandIn() as api:
        FineTuningAPI().install(api)
        settings.OPENAI_API_KEY = "sk-test-not-a-real-key"
        settings.OPENAI_BASE_URL = api.base_url
        settings.OPENAI_TIMEOUT_SECONDS = 5
        settings.OPENAI_MAX_ATTEMPTS = 4
        # Fast retries: the stand-in's retry-after is honoured up to this cap.
        settings.OPENAI_BACKOFF_BASE_SECONDS = 0.01
        settings.OPENAI_BACKOFF_MAX_SECONDS = 0.05
        settings.OPENAI_RETRY_AFTER_MAX_SECONDS = 0.2
        yield api


@pytest.fixture
def manager(roles):
    return make_user("Manager")


@pytest.fixture
def reviewer(roles):
    return make_user("Reviewer")


@pytest.fixture
def version(db):
    return make_dataset_version()


@pytest.fixture
def base_model(db):
    return make_base_model("gpt-4o-mini-2024-07-18", price="3.00")
