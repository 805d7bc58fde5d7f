"""The one page loader: a drawing page's image bytes, read and checked against what a dataset version froze.

Exports, evaluations, estimates and dataset builds all read page images here. A version freezes a
fingerprint of each page (`page_fingerprint`: sha256, CRC-32, size, mtime) into its members; a loader
given that fingerprint refuses bytes that differ, so a paid job never trains on a page changed since.
"""

from __future__ import annotations

import collections
import hashlib
import os
import zlib
from collections.abc import Callable, Iterable
from concurrent.futures import Executor

from curation.models import DrawingPage
from curation.openai_format import page_ref_ids, resolve_image_refs
from gestima.storage import storage_read_bytes

# What a loader's error messages name (drawing, page number): loaded with the page, never one query each.
_FIELDS = ("id", "image", "number", "drawing__part_number", "drawing__original_name")


class ExportError(Exception):
    """An export (a file, or page images for an API request) that cannot go on; the message says what to do."""


def page_read(page: DrawingPage) -> bytes:
    """The page image's bytes; ExportError when the file is gone or unreadable."""
    try:
        if not page.image:
            raise ValueError(f"The '{DrawingPage.image.field.name}' attribute has no file associated with it.")
        # Through the storage, not the FieldFile: a FieldFile keeps one handle, and threads reading one page
        # instance (a few-shot page shown with many questions at once) would close it under each other.
        return storage_read_bytes(page.image.storage, page.image.name)
    except (FileNotFoundError, OSError, ValueError) as exc:
        raise ExportError(f"image file of page {page.pk} ({page}) cannot be read: {exc}") from exc


def _mtime_ns(page: DrawingPage) -> int | None:
    """The page file's modification time on a local storage (None on storages without paths)."""
    try:
        return os.stat(page.image.path).st_mtime_ns
    except (NotImplementedError, OSError, ValueError):
        return None


def page_fingerprint(page: DrawingPage, data: bytes) -> dict:
    """What a dataset version freezes of a page image: {"sha256", "crc32", "bytes", "mtime_ns"?}."""
    fingerprint = {"sha256": hashlib.sha256(data).hexdigest(), "crc32": zlib.crc32(data), "bytes": len(data)}
    mtime_ns = _mtime_ns(page)
    if mtime_ns is not None:
        fingerprint["mtime_ns"] = mtime_ns
    return fingerprint


def _page_changed(page: DrawingPage, how: str) -> ExportError:
    return ExportError(
        f"image of drawing {page.drawing} page {page.number} (page id {page.pk}) changed since "
        f"the dataset version was built ({how}): rebuild the dataset"
    )


def page_size_check(page: DrawingPage, expected: dict, data: bytes) -> None:
    """The free part of the check, done as the bytes are read: a page of another size is refused at once."""
    if "bytes" in expected and expected["bytes"] != len(data):
        raise _page_changed(page, f"{len(data):,} bytes instead of {expected['bytes']:,}")


def page_content_check(page: DrawingPage, expected: dict, data: bytes) -> None:
    """The bytes must hash to the frozen sha256 (or, in a fingerprint without one, CRC-32).

    Size and modification time are never taken as proof: a file rewritten in place with the same size
    and a restored mtime would pass them, and a paid job would then train on the wrong image.
    """
    if expected.get("sha256"):
        if hashlib.sha256(data).hexdigest() != expected["sha256"]:
            raise _page_changed(page, "sha256 differs")
    elif "crc32" in expected and zlib.crc32(data) != expected["crc32"]:
        raise _page_changed(page, "CRC-32 differs")


def page_bytes(page: DrawingPage, expected: dict | None = None) -> bytes:
    """The page image bytes; refuses bytes that differ from what a dataset version froze (sha256)."""
    expected = expected or {}
    data = page_read(page)
    page_size_check(page, expected, data)
    page_content_check(page, expected, data)
    return data


class PageImages:
    """The page rows a set of chats refers to, fetched in one query; `load` is their `PageLoader`.

    `load(page_id, expected)` never queries the database, so pool threads may call it. With
    `defer_content_check`, it checks the size at once and leaves the sha256 to the caller:
    `take_checks()` hands over one callable per page read since the last call (the export runs them
    on its writer thread, on the bytes already read).
    """

    def __init__(
        self,
        page_ids: Iterable[int] = (),
        *,
        gone_hint: str = "rebuild the example or the dataset",
        defer_content_check: bool = False,
    ):
        ids = set(page_ids)
        rows = DrawingPage.objects.filter(pk__in=ids).select_related("drawing").only(*_FIELDS) if ids else []
        self.pages: dict[int, DrawingPage] = {page.pk: page for page in rows}
        self.gone_hint = gone_hint
        self.defer_content_check = defer_content_check
        self.checks: list[Callable[[], None]] = []
        self.ahead: collections.deque = collections.deque()  # (page id, Future of its bytes), in load order
        self.queued: collections.deque = collections.deque()  # page ids still to start reading
        self.pool = None
        self.window = 0

    def read_ahead(self, page_ids: Iterable[int], *, pool: Executor, window: int) -> PageImages:
        """Read these pages (in the order `load` will ask for them) up to `window` ahead, on `pool`.

        A bucket answers each page's GET after a round trip: reading ahead overlaps those waits with the
        caller's work, and `window` bounds the bytes held (a few pages). A page asked out of order is read
        then; a read's error is raised by the `load` of that page, as without read-ahead.
        """
        self.pool, self.window = pool, window
        self.queued.extend(pid for pid in page_ids if pid in self.pages)
        self._top_up()
        return self

    def _top_up(self) -> None:
        while self.queued and len(self.ahead) < self.window:
            pid = self.queued.popleft()
            self.ahead.append((pid, self.pool.submit(page_read, self.pages[pid])))

    def _read(self, page: DrawingPage) -> bytes:
        if self.ahead and self.ahead[0][0] == page.pk:
            _, future = self.ahead.popleft()
            self._top_up()
            return future.result()
        return page_read(page)

    def cancel(self) -> None:
        """Drop the reads not yet started (an export that stops early)."""
        self.queued.clear()
        for _, future in self.ahead:
            future.cancel()
        self.ahead.clear()

    @classmethod
    def of_messages(cls, chats: Iterable[list], **options) -> PageImages:
        """The loader for the pages these chats (lists of messages) refer to."""
        return cls({pid for messages in chats for pid in page_ref_ids(messages)}, **options)

    def joined(self, other: PageImages) -> PageImages:
        """A loader over the pages of both (those of `other` win), with this one's options."""
        joined = PageImages(gone_hint=self.gone_hint, defer_content_check=self.defer_content_check)
        joined.pages = {**self.pages, **other.pages}
        return joined

    def get(self, page_id: int) -> DrawingPage | None:
        return self.pages.get(page_id)

    def load(self, page_id: int, expected: dict | None = None) -> bytes:
        page = self.pages.get(page_id)
        if page is None:
            raise ExportError(f"page {page_id} no longer exists: {self.gone_hint}")
        expected = expected or {}
        data = self._read(page)
        page_size_check(page, expected, data)
        if self.defer_content_check:
            self.checks.append(lambda: page_content_check(page, expected, data))
        else:
            page_content_check(page, expected, data)
        return data

    def take_checks(self) -> list[Callable[[], None]]:
        checks, self.checks = self.checks, []
        return checks


def messages_with_images(messages: list[dict]) -> list[dict]:
    """API-ready messages: every `page:<id>` image reference replaced by a base64 data URL.

    Raises ExportError when a page is missing or its file cannot be read.
    """
    return resolve_image_refs(messages, PageImages.of_messages([messages]).load)
