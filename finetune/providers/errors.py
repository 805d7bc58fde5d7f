"""SDK exceptions → ProviderError, the one classification every OpenAI call (files, jobs, chat) shares.

Rate limits, 5xx, timeouts and connection errors may succeed later; 400/401/403/404/422 and quota 429s
never do. The API's message is kept whole.
"""
from __future__ import annotations

from finetune.providers.base import ProviderError

# 429s that waiting does not fix: the account is out of money or out of its daily allowance.
NON_RETRYABLE_429 = {"insufficient_quota", "daily_rate_limit_exceeded", "billing_hard_limit_reached"}


def _retry_after(headers) -> float | None:
    if not headers:
        return None
    for name, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
        value = headers.get(name)
        if value:
            try:
                return max(0.0, float(value) * scale)
            except ValueError:
                continue
    return None


def provider_error(exc: Exception) -> ProviderError:
    """Map an SDK exception to a ProviderError: message kept whole, `retryable` classified by status and code."""
    import openai

    if isinstance(exc, openai.APITimeoutError):
        return ProviderError(f"The request to the provider timed out: {exc}", code="timeout", retryable=True)
    if isinstance(exc, openai.APIConnectionError):
        return ProviderError(f"Could not reach the provider: {exc}", code="connection_error", retryable=True)
    if isinstance(exc, openai.APIStatusError):
        status = exc.status_code
        code = str(exc.code or "")
        # The API's own message, whole (the SDK's str() prefixes "Error code: ...").
        body = exc.body if isinstance(exc.body, dict) else {}
        message = body.get("message") or getattr(exc, "message", "") or str(exc)
        param = str(exc.param or "")
        headers = getattr(exc.response, "headers", None)
        if status == 429:
            retryable = code not in NON_RETRYABLE_429 and "quota" not in code and "quota" not in message.lower()
            return ProviderError(message, code=code or "rate_limit_exceeded", param=param, retryable=retryable,
                                 retry_after=_retry_after(headers) if retryable else None)
        retryable = status >= 500 or status in (408, 409)
        error = ProviderError(message, code=code or f"http_{status}", param=param, retryable=retryable,
                              retry_after=_retry_after(headers) if retryable else None)
        error.http_status = status  # e.g. 404: the job is gone (ft_doctor)
        return error
    if isinstance(exc, openai.OpenAIError):
        return ProviderError(str(exc), code="sdk_error", retryable=False)
    return ProviderError(f"{type(exc).__name__}: {exc}", code="unexpected", retryable=False)
