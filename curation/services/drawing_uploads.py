"""Drawing uploads: a PDF stored once per content (dedup by sha256, type and size checks), one or many at a time,
and its render queued. The render itself, recovery and deletion are in `curation.services.drawings`.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.core.files import File
from django.core.files.base import ContentFile
from django.db import IntegrityError, transaction

from curation import rendering
from curation.models import Drawing
from curation.services.drawings import drawing_render_enqueue
from gestima.queues import QueueUnavailable


class DrawingRejected(Exception):
    """The upload is not stored; `message` says why."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


def _megabytes(size: int) -> str:
    if size >= 1024 * 1024:
        return f"{size / (1024 * 1024):.1f} MB"
    return f"{size / 1024:.1f} KB" if size >= 1024 else f"{size} bytes"


def _read_head_and_hash(file) -> tuple[bytes, str, int]:
    file.seek(0)
    digest = hashlib.sha256()
    head = b""
    size = 0
    for chunk in iter(lambda: file.read(1024 * 1024), b""):
        if not head:
            head = chunk[: rendering.SNIFF_BYTES]
        digest.update(chunk)
        size += len(chunk)
    file.seek(0)
    return head, digest.hexdigest(), size


def drawing_ingest(
    *, file=None, content: bytes | None = None, original_name: str = "", uploaded_by=None, enqueue: bool = True
) -> tuple[Drawing, bool]:
    """Store a PDF drawing once per content and queue its render; returns (drawing, created).

    `file` is a Django File (an upload) or `content` raw bytes; `original_name` defaults to the
    file's name. Raises DrawingRejected (nothing
    stored) for an empty, oversized or non-PDF file. Raises QueueUnavailable when Redis does not
    answer: the drawing IS stored, stays `uploaded`, and the reconciler queues it later.
    """
    if (file is None) == (content is None):
        raise ValueError("pass exactly one of file or content")
    if file is None:
        file = ContentFile(content)
    # A file name from a disk can hold bytes that are not UTF-8 (surrogates in Python): stored escaped.
    name = rendering.text_storable(Path(original_name or getattr(file, "name", None) or "drawing.pdf").name)[:255]
    size = getattr(file, "size", None)
    if size is not None and size > settings.UPLOAD_MAX_BYTES:
        raise DrawingRejected(f"too large: {_megabytes(size)}, the limit is {_megabytes(settings.UPLOAD_MAX_BYTES)}")
    head, sha256, size = _read_head_and_hash(file)
    if size > settings.UPLOAD_MAX_BYTES:
        raise DrawingRejected(f"too large: {_megabytes(size)}, the limit is {_megabytes(settings.UPLOAD_MAX_BYTES)}")
    try:
        rendering.pdf_sniff(head)
    except rendering.RenderError as exc:
        raise DrawingRejected(exc.message) from None

    existing = Drawing.objects.filter(sha256=sha256).first()
    if existing is not None:
        return existing, False
    drawing = Drawing(
        original_name=name,
        sha256=sha256,
        size_bytes=size,
        uploaded_by=uploaded_by,
        part_number=rendering.part_number_from_filename(name),
        status=Drawing.Status.UPLOADED,
    )
    drawing.file.save(f"{sha256[:16]}.pdf", file, save=False)
    try:
        with transaction.atomic():
            drawing.save()
    except IntegrityError:
        # Another upload of the same bytes won the race: keep theirs, drop our copy of the file.
        drawing.file.delete(save=False)
        return Drawing.objects.get(sha256=sha256), False
    if enqueue:
        drawing_render_enqueue(drawing=drawing)
    return drawing, True


@dataclass
class IngestOutcome:
    name: str
    verdict: str  # "new", "existing" or "rejected"
    drawing: Drawing | None = None
    reason: str = ""


def drawings_ingest_many(
    *, files: list[tuple[str, object]], uploaded_by=None, enqueue: bool = True
) -> tuple[list[IngestOutcome], str]:
    """Ingest several (name, File | bytes | Path) pairs; returns the outcome per file and a queue warning ("" if none).

    One bad file never stops the others; when Redis is away every drawing is still stored (the
    reconciler renders them later) and the warning says so. Paths are opened one at a time.
    """
    outcomes = []
    queue_error = ""
    for name, data in files:
        try:
            if isinstance(data, Path):
                with open(data, "rb") as handle:
                    drawing, created = _ingest_one(
                        name, File(handle, name=name), uploaded_by, enqueue and not queue_error
                    )
            else:
                drawing, created = _ingest_one(name, data, uploaded_by, enqueue and not queue_error)
        except DrawingRejected as exc:
            outcomes.append(IngestOutcome(name=name, verdict="rejected", reason=exc.message))
            continue
        except OSError as exc:  # unreadable (permissions, a vanished file) or not storable (disk full)
            reason = rendering.text_storable(f"could not read or store the file: {exc.strerror or exc}")
            outcomes.append(IngestOutcome(name=name, verdict="rejected", reason=reason))
            continue
        except _StoredButNotQueued as exc:
            queue_error = exc.message
            drawing, created = exc.drawing, True
        outcomes.append(IngestOutcome(name=name, verdict="new" if created else "existing", drawing=drawing))
    return outcomes, queue_error


class _StoredButNotQueued(Exception):
    def __init__(self, drawing: Drawing, message: str):
        self.drawing, self.message = drawing, message


def _ingest_one(name, data, uploaded_by, enqueue):
    kwargs = {"content": bytes(data)} if isinstance(data, (bytes, bytearray)) else {"file": data}
    drawing, created = drawing_ingest(original_name=name, uploaded_by=uploaded_by, enqueue=False, **kwargs)
    if created and enqueue:
        try:
            drawing_render_enqueue(drawing=drawing)
        except QueueUnavailable as exc:
            raise _StoredButNotQueued(drawing, str(exc)) from None
    return drawing, created
