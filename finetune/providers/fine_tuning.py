"""What the fine-tuning side of a provider returns: plain records, independent of any SDK."""

from __future__ import annotations

import base64
import binascii
import csv
import hashlib
import io
import re
from dataclasses import dataclass, field
from typing import Any

# Metadata key carrying our run id on every remote job: found again after a crash or an ambiguous create.
RUN_ID_KEY = "gestima_run_id"


def account_fingerprint(*, provider: str, base_url: str, organization: str, api_key: str) -> str:
    """Which provider account a file id belongs to: a hash of provider + base URL/endpoint + organisation
    + a hash of the key. The key itself is never stored; a new key, organisation or URL gives a new account."""
    key_hash = hashlib.sha256((api_key or "").encode()).hexdigest()
    raw = "\n".join([provider, (base_url or "").rstrip("/").lower(), organization or "", key_hash])
    return hashlib.sha256(raw.encode()).hexdigest()


@dataclass
class RemoteFile:
    id: str
    bytes: int = 0
    multipart: bool = False


@dataclass
class RemoteJob:
    id: str
    status: str
    model: str = ""
    fine_tuned_model: str = ""
    trained_tokens: int | None = None
    error_code: str = ""
    error_message: str = ""
    error_param: str = ""
    result_files: list[str] = field(default_factory=list)
    metadata: dict[str, str] = field(default_factory=dict)
    created_at: int | None = None
    finished_at: int | None = None
    training_file: str = ""
    validation_file: str = ""
    # The values the provider chose for "auto" (method.<type>.hyperparameters, else the legacy field).
    hyperparameters: dict[str, Any] = field(default_factory=dict)
    estimated_finish: int | None = None

    @property
    def run_id(self) -> str:
        return (self.metadata or {}).get(RUN_ID_KEY, "")


@dataclass
class RemoteEvent:
    id: str
    created_at: int | None
    level: str
    type: str
    message: str
    data: dict[str, Any]


@dataclass
class RemoteCheckpoint:
    id: str
    step: int | None
    fine_tuned_model_checkpoint: str
    metrics: dict[str, Any]
    created_at: int | None


def result_csv_rows(content: bytes | str) -> list[dict[str, float | None]]:
    """Parse the job's result file: CSV, or the same CSV base64-encoded (both have been seen)."""
    text = content.decode("utf-8", "replace") if isinstance(content, bytes) else content
    if not text.lstrip().lower().startswith("step"):
        try:
            text = base64.b64decode(text.strip(), validate=False).decode("utf-8", "replace")
        except (binascii.Error, ValueError):
            return []
    rows = []
    for raw in csv.DictReader(io.StringIO(text)):
        row = {}
        for key, value in raw.items():
            if key is None:
                continue
            try:
                row[key.strip()] = float(value) if value not in ("", None) else None
            except ValueError:
                row[key.strip()] = None
        if row.get("step") is not None:
            rows.append(row)
    return rows


# --- what the provider dropped or refused ----------------------------------------------------------


@dataclass
class ProviderRefusal:
    """One line of an uploaded file the provider dropped or refused, in its own words."""

    split: str  # "train" or "validation"
    line: int  # 1-based line of that split's JSONL file
    reason: str
    source: str  # "event" or "job_error"


# Words the provider uses when it leaves an example out: skipped images, moderation, invalid lines.
_REFUSAL_WORDS = re.compile(
    r"skip|refus|moderat|violat|drop|exclud|remov|invalid|reject|block|"
    r"could not be (?:processed|read|downloaded)|not (?:be )?used",
    re.I,
)
# "line 3", "Line 3, message 2", "lines 2, 5 and 7", "lines 4-6"
_LINES = re.compile(r"\blines?\s+(\d+(?:\s*(?:,|and|&|-|–|to)\s*\d+)*)", re.I)


def _line_numbers(text: str) -> list[int]:
    numbers = []
    for match in _LINES.finditer(text or ""):
        spec = re.sub(r"\s*(?:–|to)\s*", "-", match.group(1))
        for piece in re.split(r"\s*(?:,|and|&)\s*", spec):
            if "-" in piece:
                low, _, high = piece.partition("-")
                if low.strip().isdigit() and high.strip().isdigit() and 0 < int(high) - int(low) < 10_000:
                    numbers.extend(range(int(low), int(high) + 1))
            elif piece.strip().isdigit():
                numbers.append(int(piece))
    return [n for n in numbers if n > 0]


def _split_named(*texts: str) -> str:
    joined = " ".join(t or "" for t in texts).lower()
    return "validation" if "validation" in joined else "train"


def _data_lines(data: dict) -> list[int]:
    lines = data.get("lines") if isinstance(data.get("lines"), list) else [data.get("line")]
    return [int(n) for n in lines if isinstance(n, (int, str)) and str(n).isdigit() and int(n) > 0]


def provider_refusals(
    *, events: list[RemoteEvent], error_code: str = "", error_message: str = "", error_param: str = ""
) -> list[ProviderRefusal]:
    """The lines the provider says it dropped or refused: warning/error events naming lines (in `data` or in
    the message: skipped images, moderation), and a failed job's error ("invalid_training_file ... line N").
    Messages without a line number cannot be tied to an example and are left to the run's event list."""
    found: dict[tuple[str, int], ProviderRefusal] = {}

    def add(split, lines, reason, source):
        for line in lines:
            found.setdefault((split, line), ProviderRefusal(split=split, line=line, reason=reason, source=source))

    for event in events:
        data = event.data if isinstance(event.data, dict) else {}
        lines = _data_lines(data)
        if not lines and (
            str(event.level).lower() in ("warn", "warning", "error") or _REFUSAL_WORDS.search(event.message)
        ):
            lines = _line_numbers(event.message) if _REFUSAL_WORDS.search(event.message) else []
        if lines:
            split = (
                data.get("split")
                if data.get("split") in ("train", "validation")
                else _split_named(str(data.get("file", "")), event.message)
            )
            add(split, lines, event.message, "event")
    if error_code or error_message:
        lines = _line_numbers(error_message)
        if lines:
            add(
                _split_named(error_param if error_param != "training_file" else "", error_message),
                lines,
                f"{error_code}: {error_message}" if error_code else error_message,
                "job_error",
            )
    return sorted(found.values(), key=lambda r: (r.split, r.line))
