"""OpenAI-compatible model endpoints (vLLM, Ollama, Together serverless, Azure AI): which provider asks a
model, at what price, and whether its key is there. The rows hold only the NAME of the key's variable."""

from __future__ import annotations

from decimal import Decimal

from finetune.models import ModelEndpoint
from finetune.providers.base import Provider, ProviderError, get_provider
from finetune.providers.compatible import CompatibleProvider, endpoint_key_missing

COMPATIBLE = CompatibleProvider.name


class EndpointError(Exception):
    """An endpoint that cannot be used (unknown name, key variable not set); the message says what to do."""


def endpoint_by_name(name: str) -> ModelEndpoint:
    endpoint = ModelEndpoint.objects.filter(name=(name or "").strip()).first()
    if endpoint is None:
        known = ", ".join(ModelEndpoint.objects.values_list("name", flat=True)) or "none yet (add one in the admin)"
        raise EndpointError(f"No model endpoint named {name!r}; known: {known}.")
    return endpoint


def endpoint_check(endpoint: ModelEndpoint) -> ModelEndpoint:
    """Refuse an endpoint whose key variable is not set in this process, before anything is queued or paid."""
    missing = endpoint_key_missing(endpoint.api_key_env)
    if missing:
        raise EndpointError(f"Endpoint {endpoint.name}: {missing}.")
    return endpoint


def endpoint_provider(endpoint: ModelEndpoint) -> CompatibleProvider:
    return CompatibleProvider(base_url=endpoint.base_url, api_key_env=endpoint.api_key_env, endpoint_name=endpoint.name)


def model_provider(*, provider: str, endpoint: ModelEndpoint | None) -> Provider:
    """The provider that serves a model of an eval run or a model version: its endpoint's, else by name."""
    if endpoint is not None:
        return endpoint_provider(endpoint)
    if provider == COMPATIBLE:
        raise ProviderError("the compatible provider needs a model endpoint (none is linked)", code="not_configured")
    return get_provider(provider)


def endpoint_prices(endpoint: ModelEndpoint) -> tuple[Decimal, Decimal] | None:
    """(input, output) USD per 1M tokens, or None when either is unknown (costs show "unknown", never $0)."""
    if endpoint.input_price_per_1m is None or endpoint.output_price_per_1m is None:
        return None
    return Decimal(endpoint.input_price_per_1m), Decimal(endpoint.output_price_per_1m)
