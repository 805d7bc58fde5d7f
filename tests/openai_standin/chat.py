"""Chat completions on the stand-in: POST /chat/completions answered by a function the test chooses.

`install_chat(api, answer)` registers the route. `answer(body)` gets the request JSON and returns the
assistant's text (str), a `Reply` (text, refusal, delay, token counts) or a `Response` (an HTTP error).
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass
from typing import Callable

from tests.openai_standin.base import Request, Response, StandIn

_ids = itertools.count(1)


@dataclass
class Reply:
    text: str | None = ""
    refusal: str | None = None
    delay: float = 0.0
    prompt_tokens: int = 100
    completion_tokens: int = 20


def chat_completion(
    *, model: str, text: str | None, refusal: str | None = None, prompt_tokens=100, completion_tokens=20
) -> dict:
    return {
        "id": f"chatcmpl-standin-{next(_ids)}",
        "object": "chat.completion",
        "created": 1_700_000_000,
        "model": model,
        "choices": [
            {
                "index": 0,
                "finish_reason": "stop",
                "logprobs": None,
                "message": {"role": "assistant", "content": None if refusal else text, "refusal": refusal},
            }
        ],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
    }


def user_text(body: dict) -> str:
    """All text of the user messages of a request (image parts left out)."""
    parts = []
    for message in body.get("messages", []):
        if message.get("role") != "user":
            continue
        content = message.get("content")
        if isinstance(content, str):
            parts.append(content)
        else:
            parts.extend(p.get("text", "") for p in content or [] if p.get("type") == "text")
    return "\n".join(parts)


def part_number(body: dict) -> str:
    """The part number named in the user text ("... part P-00012 ..."), or ""."""
    match = re.search(r"part\s+([A-Za-z0-9_.\-]+?)(?:[\s.,(]|$)", user_text(body))
    return match.group(1) if match else ""


def install_chat(api: StandIn, answer: Callable[[dict], str | Reply | Response]) -> None:
    def handle(request: Request) -> Response:
        body = request.json()
        result = answer(body)
        if isinstance(result, Response):
            return result
        reply = result if isinstance(result, Reply) else Reply(text=result)
        return Response(
            200,
            chat_completion(
                model=body.get("model", ""),
                text=reply.text,
                refusal=reply.refusal,
                prompt_tokens=reply.prompt_tokens,
                completion_tokens=reply.completion_tokens,
            ),
            delay=reply.delay,
        )

    api.route("POST", "/chat/completions")(handle)
