"""Exports of dataset versions (OpenAI JSONL, open-weight JSONL + images) and API-ready messages.

Export streams: members are read with `.iterator()`, each line is written as soon as it is built, and
files appear under their final names only when complete (temp name in the same dir, fsync, rename).
"""
from __future__ import annotations

import hashlib

from curation.models import DrawingPage
from curation.openai_format import resolve_image_refs


class ExportError(Exception):
    """An export that cannot go on; the message says what to do."""


def page_bytes(page: DrawingPage, expected_sha256: str | None = None) -> bytes:
    """The page image bytes; refuses bytes that differ from the hash a dataset version froze."""
    try:
        with page.image.open("rb") as handle:
            data = handle.read()
    except (FileNotFoundError, OSError, ValueError) as exc:
        raise ExportError(f"image file of page {page.pk} ({page}) cannot be read: {exc}") from exc
    if expected_sha256 and hashlib.sha256(data).hexdigest() != expected_sha256:
        raise ExportError(
            f"image of page {page.pk} ({page}) changed since the dataset version was built: rebuild the dataset"
        )
    return data


def _load_page(page_id: int, expected_sha256: str | None = None) -> bytes:
    page = DrawingPage.objects.filter(pk=page_id).select_related("drawing").first()
    if page is None:
        raise ExportError(f"page {page_id} no longer exists: rebuild the example or the dataset")
    return page_bytes(page, expected_sha256)


def messages_with_images(messages: list[dict]) -> list[dict]:
    """API-ready messages: every `page:<id>` image reference replaced by a base64 data URL.

    Raises ExportError when a page is missing or its file cannot be read.
    """
    return resolve_image_refs(messages, _load_page)
