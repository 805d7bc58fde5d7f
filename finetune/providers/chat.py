"""Chat completions through the `openai` SDK (evaluation and estimates): a mixin for the OpenAI providers.

Errors come back as ProviderError classified by `errors.provider_error`, like every other OpenAI call.
"""

from __future__ import annotations

import time

from finetune.providers.base import ChatResult, ProviderError
from finetune.providers.errors import provider_error


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

    def chat(
        self,
        *,
        model: str,
        messages: list[dict],
        json_output: bool = True,
        temperature: float = 0.0,
        timeout: float = 120.0,
    ) -> ChatResult:
        import openai

        try:
            return chat_completion(
                self.client,
                model=model,
                messages=messages,
                json_output=json_output,
                temperature=temperature,
                timeout=timeout,
            )
        except openai.OpenAIError as exc:
            raise provider_error(exc) from exc


def chat_completion(
    client, *, model: str, messages: list[dict], json_output: bool, temperature: float, timeout: float
) -> ChatResult:
    """One chat completion through an OpenAI-style SDK client (openai's, together's): the request and the
    mapping of its answer, shared by every provider. SDK errors propagate for the caller to classify."""
    # A per-request timeout (not `with_options`, which copies the client on every call).
    kwargs = {"model": model, "messages": messages, "temperature": temperature, "timeout": timeout}
    if json_output:
        kwargs["response_format"] = {"type": "json_object"}
    started = time.perf_counter()
    completion = client.chat.completions.create(**kwargs)
    latency_ms = int((time.perf_counter() - started) * 1000)
    if not completion.choices:
        raise ProviderError("the API returned no choices", code="empty_response", retryable=True)
    message = completion.choices[0].message
    usage = completion.usage
    return ChatResult(
        text=message.content or "",
        input_tokens=(getattr(usage, "prompt_tokens", 0) if usage else 0) or 0,
        output_tokens=(getattr(usage, "completion_tokens", 0) if usage else 0) or 0,
        latency_ms=latency_ms,
        refusal=getattr(message, "refusal", None) or "",
        # What identifies the call for an audit; the full dump cost ~0.5 ms of CPU per call for nothing.
        raw={
            "id": completion.id,
            "model": completion.model,
            "finish_reason": completion.choices[0].finish_reason,
            "system_fingerprint": getattr(completion, "system_fingerprint", None),
        },
    )
