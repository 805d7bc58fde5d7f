"""What a render hands back (pages, warnings, problems), its limits, and its errors in storable words. No ORM."""

from __future__ import annotations

import re
from dataclasses import dataclass, field


class RenderError(Exception):
    """A drawing cannot be rendered; `message` says why in words a person can act on (always storable text)."""

    def __init__(self, message: str):
        message = text_storable(message)
        super().__init__(message)
        self.message = message


# Lone surrogates (PyMuPDF hands MuPDF's raw file bytes over as U+DC80..U+DCFF, "surrogateescape") cannot be
# encoded as UTF-8, so no database stores them; PostgreSQL also refuses NUL. Other C0 controls go with them.
_UNSTORABLE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ud800-\udfff]")


def _escape_unstorable(match: re.Match) -> str:
    code = ord(match.group())
    if 0xDC80 <= code <= 0xDCFF:
        return f"\\x{code - 0xDC00:02x}"  # the raw byte from the file, readable
    if code < 0x80:
        return f"\\x{code:02x}"
    return "\ufffd"  # a surrogate that never was a byte (e.g. a broken ToUnicode map)


def text_storable(text: str) -> str:
    """`text` with raw bytes and control characters written as \\xNN: valid UTF-8 that any database stores.

    Everything a render hands back (warnings, errors, title-block fields) and file names go through this.
    """
    return _UNSTORABLE.sub(_escape_unstorable, text)


@dataclass(frozen=True)
class RenderLimits:
    max_side_px: int = 2048
    dpi_cap: int = 300
    max_pixels: int = 2048 * 2048
    max_pages: int = 50
    max_image_bytes: int = 10 * 1024 * 1024
    max_page_points: int = 10_000
    memory_limit_mb: int = 1024
    timeout_seconds: int = 240
    jpeg_quality: int = 85

    @classmethod
    def from_settings(cls) -> "RenderLimits":
        from django.conf import settings

        return cls(
            max_side_px=settings.RENDER_MAX_SIDE_PX,
            dpi_cap=settings.RENDER_DPI_CAP,
            max_pixels=settings.RENDER_MAX_PIXELS,
            max_pages=settings.RENDER_MAX_PAGES,
            max_image_bytes=settings.RENDER_MAX_IMAGE_BYTES,
            max_page_points=settings.RENDER_MAX_PAGE_POINTS,
            memory_limit_mb=settings.RENDER_MEMORY_LIMIT_MB,
            timeout_seconds=settings.RENDER_TIMEOUT_SECONDS,
            jpeg_quality=settings.RENDER_JPEG_QUALITY,
        )


@dataclass
class RenderedPage:
    number: int
    path: str  # the encoded image, in the caller's output directory
    width: int
    height: int
    format: str  # "png" or "jpeg"
    bytes: int
    sha256: str
    phash: str
    scanned: bool


@dataclass
class RenderResult:
    pages: list[RenderedPage]
    has_text_layer: bool
    part_number: str  # from the title block; "" when none was found
    repaired: bool
    warnings: list[str] = field(default_factory=list)
    material: str = ""  # as printed in the title block; "" for scans
    # Pages not kept as images (too small to hold a drawing) and pages kept but flagged (blank), each with its
    # reason: shown on the drawing, so a person can check the file.
    page_problems: list[str] = field(default_factory=list)

    @property
    def page_count(self) -> int:
        return len(self.pages)
