"""Token counts (o200k/cl100k offline, cookbook chat overhead), image formulas from the reference, cost."""

from decimal import Decimal

import pytest

from curation.tokens import (
    PATCHES,
    TILES_MINI,
    ImageScheme,
    image_tokens,
    messages_text_tokens,
    text_tokens,
    training_cost,
)


def test_hello_world_tokens():
    assert text_tokens("hello world", "o200k_base") == 2
    assert text_tokens("hello world", "cl100k_base") == 2


def test_unknown_encoding_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown token encoding 'p99k'"):
        text_tokens("x", "p99k")


def test_chat_overhead_as_the_cookbook_counts():
    # 3 per message + role + content tokens, 1 for a name, 3 priming the reply.
    messages = [
        {"role": "user", "content": "hello world"},
        {"role": "assistant", "content": "hello world", "name": "bot"},
    ]
    role_tokens = text_tokens("user") + text_tokens("assistant")
    assert messages_text_tokens(messages) == 3 + 3 + role_tokens + 2 + 2 + text_tokens("bot") + 1 + 3


def test_list_content_counts_text_parts_only():
    messages = [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "hello world"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
            ],
        }
    ]
    assert messages_text_tokens(messages) == 3 + text_tokens("user") + 2 + 3


def test_long_text_is_counted_in_pieces_exactly():
    from curation.tokens import encoding

    text = "word " * 150_000  # 750,000 characters: above the 200,000-character piece size
    assert text_tokens(text) == len(encoding("o200k_base").encode_ordinary(text))


@pytest.mark.parametrize(
    "size, detail, expected",
    [
        ((1024, 1024), "high", 765),  # reference: 768 × 768 → 4 tiles
        ((1024, 1024), "low", 85),
        ((2048, 4096), "high", 1105),  # 1024 × 2048 → 768 × 1536 → 6 tiles
        ((4963, 3509), "auto", 1105),  # A3 at 300 DPI: 2048 × 1448 → 1086 × 768 → 6 tiles
        ((500, 300), "high", 255),  # one tile, never enlarged
    ],
)
def test_tile_formula(size, detail, expected):
    assert image_tokens(*size, detail) == expected


def test_a3_at_300_dpi_costs_what_a_2048_px_render_costs():
    assert image_tokens(4963, 3509, "high") == image_tokens(2048, 1448, "high")


def test_mini_tiles_and_patches():
    assert image_tokens(1024, 1024, "high", ImageScheme(TILES_MINI)) == 2833 + 5667 * 4
    assert image_tokens(1024, 1024, "low", ImageScheme(TILES_MINI)) == 2833
    # 1024 × 1024 = 32 × 32 patches = 1024 ≤ 1536, × 1.62 (gpt-4.1-mini)
    assert image_tokens(1024, 1024, "high", ImageScheme(PATCHES, 1.62)) == 1659
    # 1800 × 2400 is shrunk under the 1536 cap (OpenAI's worked example gives 1452 patches)
    assert image_tokens(1800, 2400, "high", ImageScheme(PATCHES, 1.0)) == 1452


def test_cost_arithmetic():
    # $25 per 1M × 1,234,567 tokens × 3 epochs = $92.59
    assert training_cost(tokens=1_234_567, price_per_1m=Decimal("25"), epochs=3) == Decimal("92.59")
    assert training_cost(tokens=2_000_000, price_per_1m="1.50", epochs=1) == Decimal("3.00")
