"""OpenAI line building and validation: the cookbook's checks, image parts, tools, weight."""

import base64
import io
import json

import pytest
from PIL import Image

from curation.openai_format import (
    build_line,
    data_url,
    dumps_line,
    line_pieces,
    decode_data_url,
    resolve_image_refs,
    validate_jsonl,
    validate_line,
)


def png(mode="RGB", size=(32, 32), fmt="PNG") -> bytes:
    buffer = io.BytesIO()
    Image.new(mode, size).save(buffer, fmt)
    return buffer.getvalue()


def codes(line, **kw):
    return [p["code"] for p in validate_line(line, **kw)]


def image_line(url, role="user"):
    return {
        "messages": [
            {
                "role": role,
                "content": [
                    {"type": "text", "text": "x"},
                    {"type": "image_url", "image_url": {"url": url, "detail": "high"}},
                ],
            },
            {"role": "assistant", "content": "ok"},
        ]
    }


def test_valid_text_and_image_lines_have_no_problems():
    assert (
        validate_line(
            {
                "messages": [
                    {"role": "system", "content": "s"},
                    {"role": "user", "content": "u"},
                    {"role": "assistant", "content": "a", "weight": 1},
                ]
            }
        )
        == []
    )
    assert validate_line(image_line(data_url(png()))) == []
    assert validate_line(image_line(data_url(png("RGBA", fmt="PNG")))) == []
    assert validate_line(image_line(data_url(png(fmt="WEBP")))) == []


@pytest.mark.parametrize(
    "line, code",
    [
        ("[1, 2]", "data_type"),
        ("{not json", "invalid_json"),
        ({"prompt": "x"}, "missing_messages_list"),
        ({"messages": [{"content": "x"}, {"role": "assistant", "content": "a"}]}, "message_missing_key"),
        (
            {"messages": [{"role": "user", "content": "x", "colour": 1}, {"role": "assistant", "content": "a"}]},
            "message_unrecognized_key",
        ),
        ({"messages": [{"role": "robot", "content": "x"}, {"role": "assistant", "content": "a"}]}, "unrecognized_role"),
        ({"messages": [{"role": "user", "content": ""}, {"role": "assistant", "content": "a"}]}, "missing_content"),
        ({"messages": [{"role": "user", "content": "x"}]}, "example_missing_assistant_message"),
        (
            {"messages": [{"role": "user", "content": "x"}, {"role": "assistant", "content": "a", "weight": 2}]},
            "invalid_weight",
        ),
        (
            {"messages": [{"role": "user", "content": "x", "weight": 1}, {"role": "assistant", "content": "a"}]},
            "invalid_weight",
        ),
        (
            {
                "messages": [
                    {"role": "user", "content": "x"},
                    {
                        "role": "assistant",
                        "tool_calls": [
                            {"id": "c1", "type": "function", "function": {"name": "f", "arguments": {"a": 1}}}
                        ],
                    },
                ]
            },
            "invalid_tool_calls",
        ),
        (
            {
                "messages": [
                    {"role": "user", "content": "x"},
                    {"role": "tool", "content": "r"},
                    {"role": "assistant", "content": "a"},
                ]
            },
            "message_missing_key",
        ),
    ],
)
def test_each_defect_is_named(line, code):
    assert code in codes(line)


def test_tool_calls_and_tool_role_are_accepted():
    line = {
        "tools": [{"type": "function", "function": {"name": "f", "parameters": {}}}],
        "messages": [
            {"role": "user", "content": "x"},
            {
                "role": "assistant",
                "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": '{"a": 1}'}}],
            },
            {"role": "tool", "tool_call_id": "c1", "content": "42"},
            {"role": "assistant", "content": "It is 42."},
        ],
    }
    assert validate_line(line) == []


@pytest.mark.parametrize(
    "data, expected",
    [
        (b"garbage bytes, not an image", "cannot be decoded"),
        (png("CMYK", fmt="JPEG"), "mode CMYK"),
        (png("L"), "mode L"),
        (png(fmt="GIF"), "format GIF"),
    ],
)
def test_bad_images_are_caught(data, expected):
    url = "data:image/png;base64," + base64.b64encode(data).decode()
    problems = validate_line(image_line(url))
    assert [p["code"] for p in problems] == ["invalid_image"] and expected in problems[0]["message"]


def test_oversize_image_is_refused_before_decoding():
    url = "data:image/png;base64," + base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"0" * (10 * 1024 * 1024)).decode()
    problems = validate_line(image_line(url))
    assert "above OpenAI's 10 MB limit" in problems[0]["message"]


def test_image_limits_per_example_and_role():
    url = data_url(png())
    parts = [{"type": "image_url", "image_url": {"url": url}}] * 11
    assert "too_many_images" in codes(
        {"messages": [{"role": "user", "content": parts}, {"role": "assistant", "content": "a"}]}
    )
    assert "image_in_assistant_message" in codes(
        {
            "messages": [
                {"role": "user", "content": "x"},
                {"role": "assistant", "content": [{"type": "image_url", "image_url": {"url": url}}]},
            ]
        }
    )
    assert "invalid_image_part" in codes(image_line("page:12"))  # unresolved page refs are not uploadable


def test_resolve_image_refs_embeds_page_bytes_and_drops_the_hash():
    data = png()
    seen = []
    messages = [
        {
            "role": "user",
            "content": [
                {
                    "type": "image_url",
                    "image_url": {"url": "page:7", "detail": "low"},
                    "sha256": "abc",
                    "crc32": 5,
                    "bytes": 9,
                }
            ],
        }
    ]
    resolved = resolve_image_refs(messages, lambda pid, frozen: seen.append((pid, frozen)) or data)
    part = resolved[0]["content"][0]
    assert (
        seen == [(7, {"sha256": "abc", "crc32": 5, "bytes": 9})]
        and set(part) == {"type", "image_url"}
        and part["image_url"]["detail"] == "low"
    )
    assert part["image_url"]["url"].startswith("data:image/png;base64,")
    assert decode_data_url(part["image_url"]["url"]) == data
    assert messages[0]["content"][0]["image_url"]["url"] == "page:7"  # the input is not changed


def test_build_line_appends_the_target_and_validate_jsonl_streams():
    line = build_line([{"role": "user", "content": "x"}], '{"a": 1}')
    assert line["messages"][-1] == {"role": "assistant", "content": '{"a": 1}'}
    lines = [json.dumps(line), "", json.dumps({"messages": []}), json.dumps(line)]
    assert [(n, [p["code"] for p in ps]) for n, ps in validate_jsonl(iter(lines))] == [(3, ["missing_messages_list"])]


def test_line_pieces_give_the_same_bytes_as_the_plain_encoder():
    data = png()
    messages = [
        {"role": "system", "content": "Plan ✓"},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": 'Zeichnung "A"'},
                {"type": "image_url", "image_url": {"url": "page:1", "detail": "high"}, "sha256": "x"},
                {"type": "image_url", "image_url": {"url": "page:2"}},
            ],
        },
    ]
    load = lambda pid, frozen: data  # noqa: E731
    expected = dumps_line(build_line(messages, '{"a": "ü"}', load_page=load)).encode()
    assert b"".join(line_pieces(messages, '{"a": "ü"}', load_page=load)) == expected
