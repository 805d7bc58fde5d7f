"""Any OpenAI-compatible chat endpoint (vLLM, Ollama, Together serverless, Azure AI) through the `openai` SDK.

Chat only (evaluation and estimates): the chat call and its error classification are OpenAI's own
(chat.py, errors.py). The key is read from the environment variable the endpoint names, when the client
is built, so nothing secret is stored and a missing variable is a clear error, not a 401 later.
"""

from __future__ import annotations

import os

from django.conf import settings

from curation.provider_names import ProviderName

from finetune.providers.base import Provider, ProviderError, register
from finetune.providers.chat import OpenAIChatMixin


def endpoint_key_missing(api_key_env: str) -> str:
    """'' when the environment variable holds a key, else why the endpoint cannot be used."""
    if not api_key_env:
        return "the endpoint names no environment variable for its key"
    if not os.environ.get(api_key_env):
        return (
            f"the environment variable {api_key_env} (the endpoint's key) is not set in this process: set it "
            "where the web server and the workers run (any non-empty value for a server that needs no key)"
        )
    return ""


@register
class CompatibleProvider(OpenAIChatMixin, Provider):
    name = ProviderName.COMPATIBLE
    calls_api = True
    trains_models_of = frozenset()  # chat only: never offered for training runs

    def __init__(self, *, base_url: str = "", api_key_env: str = "", endpoint_name: str = ""):
        self.base_url, self.api_key_env, self.endpoint_name = base_url, api_key_env, endpoint_name
        self._client = None

    @classmethod
    def is_configured(cls) -> bool:
        # Needs an endpoint row (finetune.services.endpoints.endpoint_provider), not settings: never a launch choice.
        return False

    @property
    def client(self):
        if self._client is None:
            import openai

            label = f"endpoint {self.endpoint_name}" if self.endpoint_name else "the compatible provider"
            if not self.base_url:
                raise ProviderError(f"{label} has no base URL: choose a model endpoint.", code="not_configured")
            missing = endpoint_key_missing(self.api_key_env)
            if missing:
                raise ProviderError(f"{label}: {missing}.", code="not_configured")
            self._client = openai.OpenAI(
                base_url=self.base_url, api_key=os.environ[self.api_key_env], timeout=settings.OPENAI_TIMEOUT_SECONDS
            )
        return self._client
