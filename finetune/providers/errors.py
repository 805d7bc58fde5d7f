"""SDK exceptions → ProviderError: one classification for every provider call (files, jobs, chat).

Rate limits, 5xx, timeouts and connection errors may succeed later; 400/401/403/404/422, payment (402)
and quota 429s never do. The API's message is kept whole. `provider_error` reads the `openai` SDK's
exceptions, `together_provider_error` the `together` SDK's (the same Stainless shapes, other classes).
"""

from __future__ import annotations

from finetune.providers.base import ProviderError

# 429s that waiting does not fix: the account is out of money or out of its daily allowance.
NON_RETRYABLE_429 = {"insufficient_quota", "daily_rate_limit_exceeded", "billing_hard_limit_reached"}
# Words in a 429's message that mean money, not pace (Together answers a spent balance with 402, or with
# a 429 naming credits: either way waiting does not help).
_MONEY_WORDS = ("quota", "credit", "balance", "billing", "spending limit", "payment")


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


def _status_error(*, status: int, code: str, message: str, param: str, headers) -> ProviderError:
    """The shared rule for an HTTP error answer, whichever SDK raised it."""
    lowered = message.lower()
    if status == 429:
        retryable = code not in NON_RETRYABLE_429 and not any(word in code or word in lowered for word in _MONEY_WORDS)
        error = ProviderError(
            message,
            code=code or ("insufficient_quota" if not retryable else "rate_limit_exceeded"),
            param=param,
            retryable=retryable,
            retry_after=_retry_after(headers) if retryable else None,
        )
    elif status == 402:
        error = ProviderError(message, code=code or "insufficient_balance", param=param, retryable=False)
    else:
        retryable = status >= 500 or status in (408, 409)
        error = ProviderError(
            message,
            code=code or f"http_{status}",
            param=param,
            retryable=retryable,
            retry_after=_retry_after(headers) if retryable else None,
        )
    error.http_status = status  # e.g. 404: the job is gone (ft_doctor)
    return error


def _body_fields(body) -> tuple[str, str, str]:
    """(message, code, param) from an error body: `{"error": {...}}`, `{"message": ...}` or plain text."""
    if isinstance(body, dict):
        inner = body.get("error") if isinstance(body.get("error"), dict) else body
        message = inner.get("message") or (body.get("error") if isinstance(body.get("error"), str) else "") or ""
        return str(message), str(inner.get("code") or ""), str(inner.get("param") or "")
    if isinstance(body, str):
        return body.strip(), "", ""
    return "", "", ""


def provider_error(exc: Exception) -> ProviderError:
    """Map an `openai` SDK exception to a ProviderError: message kept whole, `retryable` classified by status and
    code."""
    import openai

    if isinstance(exc, openai.APITimeoutError):
        return ProviderError(f"The request to the provider timed out: {exc}", code="timeout", retryable=True)
    if isinstance(exc, openai.APIConnectionError):
        return ProviderError(f"Could not reach the provider: {exc}", code="connection_error", retryable=True)
    if isinstance(exc, openai.APIStatusError):
        # The API's own message, whole (the SDK's str() prefixes "Error code: ...").
        body = exc.body if isinstance(exc.body, dict) else {}
        message = body.get("message") or getattr(exc, "message", "") or str(exc)
        return _status_error(
            status=exc.status_code,
            code=str(exc.code or ""),
            message=message,
            param=str(exc.param or ""),
            headers=getattr(exc.response, "headers", None),
        )
    if isinstance(exc, openai.OpenAIError):
        return ProviderError(str(exc), code="sdk_error", retryable=False)
    return ProviderError(f"{type(exc).__name__}: {exc}", code="unexpected", retryable=False)


def together_provider_error(exc: Exception) -> ProviderError:
    """Map a `together` SDK exception the same way. Its errors carry no `code`: the body's, if any, is used.

    The SDK also raises before any request: `FileTypeError` when its own check of a training file fails,
    `ValueError` when a parameter is outside the model's limits. Neither is worth retrying.
    """
    import together
    from together.lib.types.error import FileTypeError

    if isinstance(exc, together.APITimeoutError):
        return ProviderError(f"The request to Together timed out: {exc}", code="timeout", retryable=True)
    if isinstance(exc, together.APIConnectionError):
        return ProviderError(f"Could not reach Together: {exc}", code="connection_error", retryable=True)
    if isinstance(exc, together.APIStatusError):
        message, code, param = _body_fields(exc.body)
        return _status_error(
            status=exc.status_code,
            code=code,
            message=message or str(exc),
            param=param,
            headers=getattr(exc.response, "headers", None),
        )
    if isinstance(exc, FileTypeError):
        return ProviderError(f"Together's check refused the training file: {exc}", code="invalid_file", retryable=False)
    if isinstance(exc, ValueError):
        return ProviderError(f"Together refuses these settings: {exc}", code="invalid_request", retryable=False)
    if isinstance(exc, together.TogetherError):
        return ProviderError(str(exc), code="sdk_error", retryable=False)
    return ProviderError(f"{type(exc).__name__}: {exc}", code="unexpected", retryable=False)
