"""Token counts and training cost, offline (no ORM): text by the model's encoding, images by formula.

Text follows the cookbook's count for chat: 3 tokens per message, the tokens of every string value,
1 more for a `name`, and 3 priming the reply. Images follow OpenAI's documented tile/patch formulas.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from decimal import Decimal
from functools import lru_cache

TOKENS_PER_MESSAGE = 3
TOKENS_PER_NAME = 1
REPLY_PRIMING = 3
# bpe-openai refuses a single input of 1,000,000 characters or more: long texts are counted in pieces.
_CHUNK_CHARS = 200_000

# Schemes of BaseModel.image_tokens.
TILES, TILES_MINI, PATCHES, NONE = "tiles", "tiles_mini", "patches", "none"


@dataclass(frozen=True)
class ImageScheme:
    """How a model counts image tokens: tile base/per-tile, or 32-px patches × multiplier."""

    kind: str = TILES
    multiplier: float = 1.0


@lru_cache(maxsize=4)
def encoding(name: str):
    # Imported here: loading bpe-openai costs ~70 MB of RSS, which processes that never count tokens
    # (RQ workers exporting, the web server) should not pay.
    import bpe_openai

    try:
        return bpe_openai.get_encoding(name)
    except Exception as exc:  # bpe-openai raises its own error types for unknown names
        raise ValueError(f"unknown token encoding {name!r}: use o200k_base or cl100k_base") from exc


def text_tokens(text: str, encoding_name: str = "o200k_base") -> int:
    enc = encoding(encoding_name)
    if len(text) <= _CHUNK_CHARS:
        return len(enc.encode_ordinary(text))
    total, start = 0, 0
    while start < len(text):
        end = min(len(text), start + _CHUNK_CHARS)
        # Cut at whitespace so a word is not split across pieces (keeps the count exact in practice).
        if end < len(text):
            cut = text.rfind(" ", start + _CHUNK_CHARS // 2, end)
            end = cut if cut > start else end
        total += len(enc.encode_ordinary(text[start:end]))
        start = end
    return total


def image_tokens(width: int, height: int, detail: str = "high", scheme: ImageScheme = ImageScheme()) -> int:
    """Tokens of one image of width × height pixels under the model's scheme."""
    if scheme.kind == NONE:
        return 0
    if scheme.kind == PATCHES:
        return _patch_tokens(width, height, scheme.multiplier)
    base, per_tile = (2833, 5667) if scheme.kind == TILES_MINI else (85, 170)
    if detail == "low":
        return base
    w, h = float(width), float(height)
    if max(w, h) > 2048:  # fit inside 2048 × 2048, never enlarge
        scale = 2048 / max(w, h)
        w, h = w * scale, h * scale
    if min(w, h) > 768:  # then the shortest side at most 768
        scale = 768 / min(w, h)
        w, h = w * scale, h * scale
    tiles = math.ceil(w / 512) * math.ceil(h / 512)
    return base + per_tile * tiles


def _patch_tokens(width: int, height: int, multiplier: float) -> int:
    """32-px patches, capped at 1536 by shrinking the image (OpenAI's gpt-4.1-mini/nano formula)."""
    cap, patch = 1536, 32
    patches = math.ceil(width / patch) * math.ceil(height / patch)
    if patches > cap:
        shrink = math.sqrt(cap * patch * patch / (width * height))
        shrink *= min(
            math.floor(width * shrink / patch) / (width * shrink / patch),
            math.floor(height * shrink / patch) / (height * shrink / patch),
        )
        patches = math.ceil(int(width * shrink) / patch) * math.ceil(int(height * shrink) / patch)
    return math.ceil(min(patches, cap) * multiplier)


def messages_text_tokens(messages: list[dict], encoding_name: str = "o200k_base", *, tools: list | None = None) -> int:
    """Text tokens of a chat (images excluded), counted the way the cookbook does."""
    total = 0
    for message in messages:
        total += TOKENS_PER_MESSAGE
        for key, value in message.items():
            if key in {"weight"}:
                continue
            if key == "content" and isinstance(value, list):
                for part in value:
                    if isinstance(part, dict) and part.get("type") == "text":
                        total += text_tokens(str(part.get("text", "")), encoding_name)
            elif key == "tool_calls" and value:
                total += text_tokens(json.dumps(value, ensure_ascii=False), encoding_name)
            elif isinstance(value, str):
                total += text_tokens(value, encoding_name)
            if key == "name":
                total += TOKENS_PER_NAME
    if tools:
        total += text_tokens(json.dumps(tools, ensure_ascii=False), encoding_name)
    return total + REPLY_PRIMING


def training_cost(*, tokens: int, price_per_1m: Decimal | float | str, epochs: int) -> Decimal:
    """USD: price per 1M training tokens × tokens in the training file × epochs, to the cent."""
    cost = Decimal(str(price_per_1m)) * Decimal(tokens) * Decimal(epochs) / Decimal(1_000_000)
    return cost.quantize(Decimal("0.01"))
