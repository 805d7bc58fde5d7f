"""What the fine-tuning side of a provider returns: plain records, independent of any SDK."""
from __future__ import annotations

import base64
import binascii
import csv
import io
from dataclasses import dataclass, field
from typing import Any

# Metadata key carrying our run id on every remote job: found again after a crash or an ambiguous create.
RUN_ID_KEY = "gestima_run_id"


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
