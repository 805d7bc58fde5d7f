"""Importing chat examples from JSONL (OpenAI chat format plus task, industry, confidence and source keys):
every line checked, defective lines reported by number and reason, exact duplicates skipped.
"""

import json
from dataclasses import dataclass, field

from django.conf import settings

from curation.models import Example, Task
from curation.services.examples import content_hash
from curation.services.tasks import TargetInvalid, UnknownPreset, target_validate, task_get_or_create
from curation.tokens import text_tokens

CHAT_ROLES = {"system", "developer", "user", "assistant", "tool"}


@dataclass
class ChatImportReport:
    source_name: str = ""
    lines: int = 0
    created: int = 0
    duplicates: int = 0
    below_min_confidence: int = 0
    defects: list = field(default_factory=list)  # [{"line", "code", "reason"}]
    tasks: dict = field(default_factory=dict)  # slug -> created count

    def summary(self) -> str:
        return (
            f"{self.lines} lines: {self.created} imported, {self.duplicates} exact duplicates skipped, "
            f"{self.below_min_confidence} below the minimum confidence, {len(self.defects)} defective"
        )


class _Defect(Exception):
    def __init__(self, code: str, reason: str):
        super().__init__(reason)
        self.code, self.reason = code, reason


def _tokens_above_limit(text: str) -> int:
    """The token count when it is above EXAMPLES_IMPORT_MAX_TOKENS, else 0."""
    limit = settings.EXAMPLES_IMPORT_MAX_TOKENS
    # A token is at least one UTF-8 byte: a text of no more bytes than the limit cannot exceed it.
    if len(text.encode()) <= limit:
        return 0
    tokens = text_tokens(text)
    return tokens if tokens > limit else 0


def _content_text(content) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(str(part.get("text", "")) for part in content if isinstance(part, dict))
    return ""


def _parse_chat_line(raw: str) -> dict:
    try:
        data = json.loads(raw)
    except ValueError as exc:
        raise _Defect("invalid_json", f"invalid JSON: {exc}") from exc
    except RecursionError as exc:  # a hostile line nested thousands of levels deep
        raise _Defect("invalid_json", "invalid JSON: nested too deeply") from exc
    if not isinstance(data, dict) or not isinstance(data.get("messages"), list) or not data["messages"]:
        raise _Defect("no_messages", 'no "messages" list')
    for index, message in enumerate(data["messages"], 1):
        if not isinstance(message, dict):
            raise _Defect("bad_message", f"message {index} is not an object")
        role = message.get("role")
        if role not in CHAT_ROLES:
            raise _Defect(
                "unknown_role", f"message {index} has unknown role {role!r} (expected {', '.join(sorted(CHAT_ROLES))})"
            )
        if not message.get("tool_calls") and not _content_text(message.get("content")).strip():
            raise _Defect("empty_content", f"message {index} ({role}) has empty content")
    if data["messages"][-1].get("role") != "assistant":
        raise _Defect("missing_assistant_message", "the last message is not an assistant answer: nothing to learn")
    tokens = _tokens_above_limit("\n".join(_content_text(m.get("content")) for m in data["messages"]))
    if tokens:
        raise _Defect(
            "too_long", f"too long: {tokens} tokens, above the limit of {settings.EXAMPLES_IMPORT_MAX_TOKENS}"
        )
    confidence = data.get("confidence")
    if confidence is not None and (
        isinstance(confidence, bool) or not isinstance(confidence, (int, float)) or not 0 <= confidence <= 1
    ):
        raise _Defect("bad_confidence", f"confidence {confidence!r} is not a number between 0 and 1")
    return data


def examples_import_jsonl(
    *,
    file=None,
    text: str | None = None,
    task: Task | None = None,
    min_confidence: float | None = None,
    source_name: str = "",
) -> ChatImportReport:
    """Import chat examples (OpenAI format plus task, industry, confidence, source keys) as pending examples.

    Defective lines are reported by number and reason; lines below `min_confidence` (or without one when a
    minimum is set) and exact duplicates (in the file or already stored) are skipped and counted.
    """
    if text is None:
        data = file.read()
        text = data.decode("utf-8-sig", errors="replace") if isinstance(data, bytes) else data
    report = ChatImportReport(source_name=source_name)
    tasks: dict[str, Task] = {}
    seen: dict[tuple, int] = {}  # (task id, content hash) -> line
    for number, raw in enumerate(text.lstrip("\ufeff").splitlines(), 1):
        if not raw.strip():
            continue
        report.lines += 1
        try:
            data = _parse_chat_line(raw)
            line_task = task
            if line_task is None:
                slug = data.get("task")
                if not slug or not isinstance(slug, str):
                    raise _Defect("no_task", 'no "task" slug on the line and no task chosen for the import')
                if slug not in tasks:
                    try:
                        tasks[slug] = task_get_or_create(slug=slug)
                    except UnknownPreset as exc:
                        raise _Defect("unknown_task", f"unknown task {slug!r}: create it first") from exc
                line_task = tasks[slug]
            messages, target_text = data["messages"][:-1], _content_text(data["messages"][-1]["content"])
            try:
                target_validate(task=line_task, target_text=target_text)
            except TargetInvalid as exc:
                raise _Defect("target_invalid", f"answer does not fit task {line_task.slug}: {exc}") from exc
        except _Defect as defect:
            report.defects.append({"line": number, "code": defect.code, "reason": defect.reason})
            continue
        digest = content_hash(messages, target_text)
        key = (line_task.pk, digest)
        if key in seen:
            report.duplicates += 1
            report.defects.append(
                {
                    "line": number,
                    "code": f"duplicate_of_line_{seen[key]}",
                    "reason": f"exact duplicate of line {seen[key]}",
                }
            )
            continue
        seen[key] = number
        confidence = data.get("confidence")
        if min_confidence is not None and (confidence is None or confidence < min_confidence):
            report.below_min_confidence += 1
            continue
        if Example.objects.filter(task=line_task, content_hash=digest).exists():
            report.duplicates += 1
            continue
        tags = {key: data[key] for key in ("industry",) if isinstance(data.get(key), str) and data[key]}
        if isinstance(data.get("source"), str):
            tags["origin"] = data["source"]
        Example.objects.create(
            task=line_task,
            messages=messages,
            target=target_text,
            schema_version=line_task.schema_version,
            source=Example.Source.IMPORTED,
            confidence=confidence,
            tags=tags,
            # Each conversation is its own group: no two lines share a part or a customer thread we know of.
            group_key=f"chat-{digest[:16]}",
            content_hash=digest,
        )
        report.created += 1
        report.tasks[line_task.slug] = report.tasks.get(line_task.slug, 0) + 1
    return report
