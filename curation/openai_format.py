"""Build and validate OpenAI chat fine-tuning lines, one at a time (no ORM, streaming-friendly).

The checks start from OpenAI's cookbook ("data_type", "missing_messages_list", ...) and extend them for
image parts, tools and `weight`, with the limits of `../shared/reference/openai-fine-tuning.md`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
import json
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from PIL import Image, UnidentifiedImageError

MAX_IMAGES_PER_EXAMPLE = 10
MAX_IMAGE_BYTES = 10 * 1024 * 1024
IMAGE_FORMATS = {"JPEG", "PNG", "WEBP"}
IMAGE_MODES = {"RGB", "RGBA"}
MIME_BY_FORMAT = {"JPEG": "image/jpeg", "PNG": "image/png", "WEBP": "image/webp"}
PAGE_REF_PREFIX = "page:"

ROLES = {"system", "developer", "user", "assistant", "tool"}
MESSAGE_KEYS = {
    "system": {"role", "content", "name"},
    "developer": {"role", "content", "name"},
    "user": {"role", "content", "name"},
    "assistant": {"role", "content", "name", "weight", "tool_calls", "function_call", "refusal"},
    "tool": {"role", "content", "tool_call_id"},
}
LINE_KEYS = {"messages", "tools", "parallel_tool_calls", "functions"}

# A loader returns the image bytes of a page: load_page(page_id, fingerprint) -> bytes, where fingerprint
# is what a dataset version froze ({"sha256": ..., "crc32": ...}, or {} for live examples); the loader
# must refuse bytes that do not match it.
PageLoader = Callable[[int, dict], bytes]
FINGERPRINT_KEYS = ("sha256", "crc32", "bytes", "mtime_ns")


def fingerprint(part: dict) -> dict:
    return {key: part[key] for key in FINGERPRINT_KEYS if key in part}


@dataclass(frozen=True)
class ImageInfo:
    format: str
    mode: str
    width: int
    height: int
    size_bytes: int


class ImageProblem(ValueError):
    """An image OpenAI would refuse; the message says what to do about it."""


# --- images -----------------------------------------------------------------------------------


def sniff_mime(data: bytes) -> str:
    """MIME type from the first bytes (cheap: used on every exported image)."""
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return "image/png"
    if data[:3] == b"\xff\xd8\xff":
        return "image/jpeg"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return "application/octet-stream"


def data_url(data: bytes) -> str:
    return f"data:{sniff_mime(data)};base64,{base64.b64encode(data).decode('ascii')}"


def image_inspect(data: bytes) -> ImageInfo:
    """Check image bytes against OpenAI's limits; raises ImageProblem with an actionable message."""
    if len(data) > MAX_IMAGE_BYTES:
        raise ImageProblem(
            f"image is {len(data) / 1024 / 1024:.1f} MB: above OpenAI's {MAX_IMAGE_BYTES // 1024 // 1024} MB limit "
            "(render the page smaller)"
        )
    try:
        with Image.open(io.BytesIO(data)) as image:
            fmt, mode, (width, height) = image.format, image.mode, image.size
            # verify() walks the file structure (PNG chunk CRCs, JPEG markers) without decoding pixels.
            image.verify()
    except UnidentifiedImageError as exc:
        raise ImageProblem("image cannot be decoded (not a recognised image file); render the page again") from exc
    except (OSError, SyntaxError, ValueError) as exc:
        raise ImageProblem(f"image cannot be decoded ({exc}); render the page again") from exc
    if fmt not in IMAGE_FORMATS:
        raise ImageProblem(f"image format {fmt} is not accepted: use JPEG, PNG or WEBP")
    if mode not in IMAGE_MODES:
        raise ImageProblem(f"image mode {mode} is not accepted: OpenAI needs RGB or RGBA (convert the page)")
    return ImageInfo(format=fmt, mode=mode, width=width, height=height, size_bytes=len(data))


def decode_data_url(url: str) -> bytes:
    header, sep, payload = url.partition(",")
    if not sep or not header.startswith("data:") or ";base64" not in header:
        raise ImageProblem("image URL is not a base64 data URL (data:image/...;base64,...)")
    try:
        return base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ImageProblem(f"image data URL is not valid base64 ({exc})") from exc


def page_ref(page_id: int) -> str:
    """The image URL that stands for a rendered page until it is sent (`parse_page_ref` reads it back)."""
    return f"{PAGE_REF_PREFIX}{page_id}"


def parse_page_ref(url: str) -> int | None:
    """`page:<DrawingPage id>` -> id; anything else -> None. The one parser of page references."""
    if isinstance(url, str) and url.startswith(PAGE_REF_PREFIX):
        try:
            return int(url[len(PAGE_REF_PREFIX) :])
        except ValueError:
            return None
    return None


def messages_with_prompt(messages: list[dict], prompt_text: str) -> list[dict]:
    """The messages with their system (or developer) message replaced by `prompt_text`, put first: how a frozen
    example is asked of a model that learnt another prompt (evaluation, and its token estimate)."""
    rest = [m for m in messages if m.get("role") not in ("system", "developer")]
    return [{"role": "system", "content": prompt_text}] + rest


def iter_image_parts(messages: list) -> Iterator[tuple[int, dict]]:
    """(message index, part) for every image_url part. The one walk over a chat's image parts."""
    for index, message in enumerate(messages if isinstance(messages, list) else []):
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, list):
            for part in content:
                if isinstance(part, dict) and part.get("type") == "image_url":
                    yield index, part


def image_part_url(part: dict):
    """The URL of an image_url part (a data URL, an http(s) URL or a page reference); None when it has none."""
    return (part.get("image_url") or {}).get("url")


def part_page_id(part: dict) -> int | None:
    """The page id an image part refers to; None for a data or http(s) URL."""
    return parse_page_ref(image_part_url(part))


def page_ref_ids(messages: list) -> list[int]:
    """Ids of the pages a chat refers to (`page:<id>` image URLs), in message order (repeats kept)."""
    return [pid for _, part in iter_image_parts(messages) if (pid := part_page_id(part)) is not None]


def map_image_parts(messages: list[dict], replace: Callable[[dict], dict]) -> list[dict]:
    """A copy of `messages` with every image_url part replaced by `replace(part)`.

    Messages without a list content are kept as they are (the same objects); nothing else is copied.
    """
    mapped = []
    for message in messages:
        content = message.get("content")
        if not isinstance(content, list):
            mapped.append(message)
            continue
        parts = [
            replace(part) if isinstance(part, dict) and part.get("type") == "image_url" else part for part in content
        ]
        mapped.append({**message, "content": parts})
    return mapped


def resolve_image_refs(messages: list[dict], load_page: PageLoader) -> list[dict]:
    """A copy of `messages` with every `page:<id>` image URL replaced by a base64 data URL.

    A part may carry a fingerprint (`sha256`, `crc32`, `bytes`, `mtime_ns`: frozen into a dataset version); it is
    passed to the loader, which must refuse bytes that differ, and is dropped from the output.
    """

    def embed(part: dict) -> dict:
        image_url = dict(part.get("image_url") or {})
        page_id = parse_page_ref(image_url.get("url"))
        if page_id is not None:
            image_url["url"] = data_url(load_page(page_id, fingerprint(part)))
        return {"type": "image_url", "image_url": image_url}

    return map_image_parts(messages, embed)


def build_line(
    messages: list[dict], target: str, *, load_page: PageLoader | None = None, weight: int | None = None
) -> dict:
    """One training example: the prompt messages, then the target as the assistant's message."""
    if load_page is not None:
        messages = resolve_image_refs(messages, load_page)
    assistant = {"role": "assistant", "content": target}
    if weight is not None:
        assistant["weight"] = weight
    return {"messages": [*messages, assistant]}


def dumps_line(line: dict) -> str:
    return json.dumps(line, ensure_ascii=False, separators=(",", ":")) + "\n"


def line_pieces(messages: list[dict], target: str, *, load_page: PageLoader) -> list[bytes]:
    """The same bytes as `dumps_line(build_line(messages, target, load_page=...))`, as pieces to write.

    Images are spliced in as base64 instead of passing through the JSON encoder: base64 needs no JSON
    escaping, and encoding a 1.4 MB string costs more than base64 itself. This is the export's hot path.
    """
    marker = f"@@image-{uuid.uuid4().hex}@@"
    images: list[bytes] = []

    def mark(part: dict) -> dict:
        image_url = dict(part.get("image_url") or {})
        page_id = parse_page_ref(image_url.get("url"))
        if page_id is not None:
            images.append(load_page(page_id, fingerprint(part)))
            image_url["url"] = marker
        return {"type": "image_url", "image_url": image_url}

    skeleton = map_image_parts(messages, mark)
    text = dumps_line({"messages": [*skeleton, {"role": "assistant", "content": target}]}).encode("utf-8")
    chunks = text.split(marker.encode("ascii"))
    pieces = [chunks[0]]
    for data, chunk in zip(images, chunks[1:]):
        pieces.append(f"data:{sniff_mime(data)};base64,".encode("ascii"))
        pieces.extend(b64_pieces(data))
        pieces.append(chunk)
    return pieces


# base64 holds the GIL; in pieces of 192 KiB (a multiple of 3 bytes, so the pieces join into exactly
# the base64 of the whole) a thread writing and hashing beside it waits ~1 ms for the GIL, not ~5 ms.
_B64_PIECE = 3 * 64 * 1024


def b64_pieces(data: bytes) -> list[bytes]:
    view = memoryview(data)
    return [binascii.b2a_base64(view[i : i + _B64_PIECE], newline=False) for i in range(0, len(view), _B64_PIECE)] or [
        b""
    ]


# --- validation -------------------------------------------------------------------------------


def _problem(code: str, message: str, index: int | None = None) -> dict:
    return {"code": code, "message": message, "message_index": index}


def _check_tool_calls(tool_calls, index: int, problems: list) -> None:
    if not isinstance(tool_calls, list) or not tool_calls:
        problems.append(_problem("invalid_tool_calls", f"message {index}: tool_calls must be a non-empty list", index))
        return
    for call in tool_calls:
        function = call.get("function") if isinstance(call, dict) else None
        if (
            not isinstance(call, dict)
            or not call.get("id")
            or call.get("type", "function") != "function"
            or not isinstance(function, dict)
        ):
            problems.append(
                _problem(
                    "invalid_tool_calls",
                    f"message {index}: each tool call needs id, type 'function' and function",
                    index,
                )
            )
            continue
        if not function.get("name"):
            problems.append(_problem("invalid_tool_calls", f"message {index}: a tool call has no function name", index))
        arguments = function.get("arguments")
        try:
            if not isinstance(arguments, str):
                raise ValueError
            json.loads(arguments)
        except ValueError:
            problems.append(
                _problem("invalid_tool_calls", f"message {index}: tool call arguments must be a JSON string", index)
            )


def _check_content_parts(
    content: list, role: str, index: int, problems: list, images: list, check_images: bool
) -> None:
    if not content:
        problems.append(_problem("missing_content", f"message {index} ({role}) has an empty content list", index))
    for part in content:
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text":
            if not isinstance(part.get("text"), str):
                problems.append(_problem("invalid_content_part", f"message {index}: a text part has no text", index))
        elif kind == "image_url":
            if role == "assistant":
                problems.append(
                    _problem(
                        "image_in_assistant_message",
                        f"message {index}: images are not allowed in assistant messages",
                        index,
                    )
                )
                continue
            if role not in {"user", "system", "developer"}:
                problems.append(
                    _problem("image_in_wrong_role", f"message {index}: images are only allowed in user messages", index)
                )
            image_url = part.get("image_url")
            url = image_url.get("url") if isinstance(image_url, dict) else None
            if not isinstance(url, str) or not url:
                problems.append(
                    _problem("invalid_image_part", f"message {index}: image part without image_url.url", index)
                )
                continue
            detail = image_url.get("detail", "auto")
            if detail not in {"low", "high", "auto"}:
                problems.append(
                    _problem(
                        "invalid_image_part",
                        f"message {index}: image detail {detail!r} is not low, high or auto",
                        index,
                    )
                )
            images.append(url)
            if check_images and url.startswith("data:"):
                try:
                    image_inspect(decode_data_url(url))
                except ImageProblem as exc:
                    problems.append(_problem("invalid_image", f"message {index}, image {len(images)}: {exc}", index))
            elif check_images and not url.startswith(("https://", "http://")):
                problems.append(
                    _problem(
                        "invalid_image_part", f"message {index}: image URL must be a data URL or http(s) URL", index
                    )
                )
        else:
            problems.append(
                _problem(
                    "invalid_content_part",
                    f"message {index}: content part type {kind!r} is not text or image_url",
                    index,
                )
            )


def validate_line(line, *, check_images: bool = True) -> list[dict]:
    """Problems of one parsed line: [{code, message, message_index}]; [] when OpenAI would accept it.

    `line` is the parsed JSON value (a str is parsed first: invalid JSON is `invalid_json`).
    With check_images=False, image bytes are not decoded (the caller checks them from the source files).
    """
    if isinstance(line, (str, bytes)):
        try:
            line = json.loads(line)
        except ValueError as exc:
            return [_problem("invalid_json", f"line is not valid JSON ({exc})")]
    if not isinstance(line, dict):
        return [_problem("data_type", "line is not a JSON object")]
    problems: list[dict] = []
    unknown = set(line) - LINE_KEYS
    if unknown:
        problems.append(_problem("unrecognized_key", f"unrecognized top-level key(s): {', '.join(sorted(unknown))}"))
    messages = line.get("messages")
    if not isinstance(messages, list) or not messages:
        problems.append(_problem("missing_messages_list", "line has no messages list"))
        return problems
    if "tools" in line and not isinstance(line["tools"], list):
        problems.append(_problem("invalid_tools", "tools must be a list"))
    images: list[str] = []
    has_assistant = False
    for index, message in enumerate(messages):
        if not isinstance(message, dict):
            problems.append(_problem("data_type", f"message {index} is not an object", index))
            continue
        if "role" not in message or ("content" not in message and "tool_calls" not in message):
            problems.append(_problem("message_missing_key", f"message {index} lacks role or content", index))
        role = message.get("role")
        if role not in ROLES:
            problems.append(_problem("unrecognized_role", f"message {index}: role {role!r} is not recognised", index))
            continue
        extra = set(message) - MESSAGE_KEYS[role] - {"weight"}
        if extra:
            problems.append(
                _problem(
                    "message_unrecognized_key",
                    f"message {index} ({role}): unrecognized key(s) {', '.join(sorted(extra))}",
                    index,
                )
            )
        if "weight" in message:
            weight = message["weight"]
            if role != "assistant":
                problems.append(
                    _problem(
                        "invalid_weight",
                        f"message {index} ({role}): weight is allowed on assistant messages only",
                        index,
                    )
                )
            elif isinstance(weight, bool) or weight not in (0, 1):
                problems.append(
                    _problem("invalid_weight", f"message {index}: weight must be 0 or 1, not {weight!r}", index)
                )
        content = message.get("content")
        if role == "assistant":
            has_assistant = True
            if message.get("tool_calls") is not None:
                _check_tool_calls(message["tool_calls"], index, problems)
                if content not in (None, ""):
                    problems.append(
                        _problem(
                            "invalid_tool_calls",
                            f"message {index}: an assistant message with tool_calls has no content",
                            index,
                        )
                    )
                continue
        if role == "tool" and not message.get("tool_call_id"):
            problems.append(
                _problem("message_missing_key", f"message {index}: tool message without tool_call_id", index)
            )
        if isinstance(content, list):
            _check_content_parts(content, role, index, problems, images, check_images)
        elif (
            not isinstance(content, str)
            or (not content and role != "assistant")
            or (role == "assistant" and not content)
        ):
            problems.append(_problem("missing_content", f"message {index} ({role}) has no text content", index))
    if not has_assistant:
        problems.append(_problem("example_missing_assistant_message", "example has no assistant message to learn from"))
    if len(images) > MAX_IMAGES_PER_EXAMPLE:
        problems.append(
            _problem(
                "too_many_images", f"{len(images)} images: above OpenAI's limit of {MAX_IMAGES_PER_EXAMPLE} per example"
            )
        )
    return problems


def validate_jsonl(lines: Iterable[str | bytes]) -> Iterator[tuple[int, list[dict]]]:
    """(1-based line number, problems) for each line with problems; reads one line at a time."""
    for number, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        problems = validate_line(raw)
        if problems:
            yield number, problems


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
