"""Chat completions through the `openai` SDK (evaluation and estimates): a mixin for the OpenAI providers.

Errors come back as ProviderError with `retryable` set the way the API reference says: rate limits,
5xx, timeouts and connection errors may succeed later; 400/401/403/404/422 and quota 429s never do.
"""
from __future__ import annotations

import time

from finetune.providers.base import ChatResult, ProviderError

# 429s that are not worth retrying: the account is out of money or out of its daily allowance.
_NON_RETRYABLE_429 = {"insufficient_quota", "daily_rate_limit_exceeded", "billing_hard_limit_reached"}


def _retry_after(headers) -> float | None:
    if not headers:
        return None
    for name, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
        value = headers.get(name)
        if value:
            try:
                return float(value) * scale
            except ValueError:
                continue
    return None


def chat_error_from_sdk(exc: Exception) -> ProviderError:
    """Map an `openai` SDK exception to a ProviderError (message kept whole, retryable classified)."""
    import openai

    if isinstance(exc, openai.APITimeoutError):
        return ProviderError(f"timeout: {exc}", code="timeout", retryable=True)
    if isinstance(exc, openai.APIConnectionError):
        return ProviderError(f"connection error: {exc}", code="connection_error", retryable=True)
    if isinstance(exc, openai.APIStatusError):
        status = exc.status_code
        code = str(exc.code or "")
        message = getattr(exc, "message", "") or str(exc)
        headers = getattr(exc.response, "headers", None)
        if status == 429:
            retryable = code not in _NON_RETRYABLE_429 and "quota" not in message.lower()
            return ProviderError(message, code=code or "rate_limit_exceeded", param=str(exc.param or ""),
                                 retryable=retryable, retry_after=_retry_after(headers) if retryable else None)
        retryable = status >= 500 or status in (408, 409)
        return ProviderError(message, code=code or f"http_{status}", param=str(exc.param or ""),
                             retryable=retryable, retry_after=_retry_after(headers) if retryable else None)
    if isinstance(exc, openai.OpenAIError):
        return ProviderError(str(exc), code="sdk_error", retryable=False)
    return ProviderError(f"{type(exc).__name__}: {exc}", code="unexpected", retryable=False)


class OpenAIChatMixin:
    """Implements Provider.chat with `self.client` (an `openai.OpenAI` or `openai.AzureOpenAI`)."""

    client = None

    def chat_prepare(self) -> None:
        """Build the client and load the SDK's chat modules now, in the calling thread.

        Call before sharing the provider with a thread pool: otherwise every thread races to build its
        own client (each loads the CA bundle, ~0.1-0.8 s) and to import the SDK's lazy chat resources.
        Raises ProviderError when the provider is not configured (no key).
        """
        self.client.chat.completions  # noqa: B018 (cached properties: client, then its chat resources)

    def chat(self, *, model: str, messages: list[dict], json_output: bool = True, temperature: float = 0.0,
             timeout: float = 120.0) -> ChatResult:
        import openai

        # A per-request timeout (not `with_options`, which copies the client on every call).
        kwargs = {"model": model, "messages": messages, "temperature": temperature, "timeout": timeout}
        if json_output:
            kwargs["response_format"] = {"type": "json_object"}
        started = time.perf_counter()
        try:
            completion = self.client.chat.completions.create(**kwargs)
        except openai.OpenAIError as exc:
            raise chat_error_from_sdk(exc) from exc
        latency_ms = int((time.perf_counter() - started) * 1000)
        if not completion.choices:
            raise ProviderError("the API returned no choices", code="empty_response", retryable=True)
        message = completion.choices[0].message
        usage = completion.usage
        return ChatResult(
            text=message.content or "",
            input_tokens=(usage.prompt_tokens if usage else 0) or 0,
            output_tokens=(usage.completion_tokens if usage else 0) or 0,
            latency_ms=latency_ms,
            refusal=getattr(message, "refusal", None) or "",
            # What identifies the call for an audit; the full dump cost ~0.5 ms of CPU per call for nothing.
            raw={"id": completion.id, "model": completion.model, "finish_reason": completion.choices[0].finish_reason,
                 "system_fingerprint": getattr(completion, "system_fingerprint", None)},
        )
