"""Is this file a PDF, and if not, what does it look like: the check before a drawing is stored. No ORM."""

from __future__ import annotations

import re

from curation.rendering.results import RenderError

# Readers (Acrobat, MuPDF, poppler) look for the header in the first 1024 bytes: a mail or web server may
# put a few lines before it, a Mac a MacBinary block. What comes before it is ignored, as they do.
HEADER_WINDOW = 1024
# How much of the start of a file the checks read: enough to find a header pushed a little too far.
SNIFF_BYTES = 64 * 1024

_SIGNATURES = [
    (b"\x89PNG\r\n\x1a\n", "PNG"),
    (b"\xff\xd8\xff", "JPEG"),
    (b"GIF87a", "GIF"),
    (b"GIF89a", "GIF"),
    (b"II*\x00", "TIFF"),
    (b"MM\x00*", "TIFF"),
    (b"BM", "BMP"),
    (b"\xd0\xcf\x11\xe0", "an old Office document, .doc or .xls"),
    (b"\x1f\x8b", "gzip"),
    (b"Rar!", "RAR archive"),
    (b"7z\xbc\xaf", "7-Zip archive"),
    (b"RIFF", "RIFF (WebP or another media file)"),
    (b"%!PS", "PostScript"),
]
# An Office Open XML file is a ZIP whose first entries name its kind.
_ZIP_KINDS = [
    (b"word/", "a .docx Word document"),
    (b"xl/", "a .xlsx Excel workbook"),
    (b"ppt/", "a .pptx PowerPoint file"),
]
# Objects of a PDF body: a file with these but no header is a PDF whose start is missing.
_PDF_BODY = re.compile(rb"\d+\s+\d+\s+obj\b|\bendobj\b|\bstartxref\b")


def bytes_describe(head: bytes) -> str:
    """What the first bytes of a file look like, for a 'not a PDF' message."""
    if not head:
        return "empty"
    for signature, name in _SIGNATURES:
        if head.startswith(signature):
            return name
    if head.startswith(b"PK\x03\x04"):
        return next((name for marker, name in _ZIP_KINDS if marker in head), "ZIP archive (e.g. an Office document)")
    text = head[:HEADER_WINDOW].lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if text.startswith((b"<!doctype html", b"<html")) or b"<html" in text[:256]:
        return "an HTML page, e.g. a login or error page saved in place of the file"
    if text.startswith(b"<?xml") or text.startswith(b"<svg"):
        return "XML/SVG"
    try:
        decoded = head[:HEADER_WINDOW].decode("utf-8")
    except UnicodeDecodeError:
        return "binary data"
    printable = sum(ch.isprintable() or ch in "\r\n\t" for ch in decoded)
    return "text" if printable >= 0.95 * len(decoded) else "binary data"


def pdf_sniff(head: bytes) -> None:
    """Raise RenderError unless a `%PDF-` header starts within the first 1024 bytes of `head`.

    `head` is the start of the file (up to SNIFF_BYTES): more than the window, to say what is wrong.
    """
    if not head:
        raise RenderError("empty file: 0 bytes")
    window = head[:HEADER_WINDOW]
    if b"%PDF-" in window:
        return
    if b"%PDF" in window:
        raise RenderError("damaged PDF: unreadable header (it has %PDF but not %PDF-1.x)")
    kind = bytes_describe(head)
    if kind not in ("text", "binary data"):
        raise RenderError(f"not a PDF (looks like {kind})")
    where = head.find(b"%PDF-")
    if where >= 0:
        raise RenderError(
            f"not a PDF as readers see it: its %PDF- header is at byte {where:,}, after the first "
            f"{HEADER_WINDOW} bytes where PDF readers look for it (something was put in front of it)"
        )
    if _PDF_BODY.search(head):
        raise RenderError(
            f"damaged PDF: no %PDF- header in the first {HEADER_WINDOW} bytes, though it holds PDF objects "
            "(the start of the file is missing)"
        )
    raise RenderError(f"not a PDF (looks like {kind}): no %PDF- header in the first {HEADER_WINDOW} bytes")
