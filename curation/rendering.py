"""PDF drawing → page images the model can use (≤ 2048 px, RGB, ≤ 10 MB), with a human reason when it cannot.

The only module that imports PyMuPDF; no ORM. `render_isolated` runs the render in a forked child
with an address-space cap, so a hostile PDF fails one drawing instead of taking the worker down.
"""
from __future__ import annotations

import hashlib
import io
import math
import mmap
import os
import pickle
import re
import resource
import select
import signal
import struct
import threading
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image

_pymupdf = None


def _mupdf():
    """PyMuPDF, imported on first use: processes that never render (web, exports) need not carry its ~110 MB."""
    global _pymupdf
    if _pymupdf is None:
        import sys

        # PyMuPDF 2 imports its layout analyser (onnxruntime and a model: ~1.5 s and ~50 MB) when installed;
        # only `Page.get_layout` uses it, and rendering never calls that.
        sys.modules.setdefault("pymupdf.layout", None)
        import pymupdf

        # MuPDF prints its warnings to stderr by default; we collect them per drawing instead.
        pymupdf.TOOLS.mupdf_display_errors(False)
        pymupdf.TOOLS.mupdf_display_warnings(False)
        _pymupdf = pymupdf
    return _pymupdf


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


# --- What the bytes are -------------------------------------------------------------------------

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
_ZIP_KINDS = [(b"word/", "a .docx Word document"), (b"xl/", "a .xlsx Excel workbook"),
              (b"ppt/", "a .pptx PowerPoint file")]
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


# --- Rendering (in-process; `render_isolated` wraps it in a capped child) -------------------------

def _classify(stage: str, exc: BaseException, *, page: int | None = None, memory_mb: int = 0) -> str:
    # MuPDF prefixes its messages with "code=N: "; a person does not need that.
    text = re.sub(r"^code=\d+:\s*", "", str(exc).strip()) or type(exc).__name__
    lowered = text.lower()
    where = f"page {page}" if page else "the PDF"
    if isinstance(exc, MemoryError) or "malloc" in lowered or "out of memory" in lowered:
        limit = f" of {memory_mb:,} MB" if memory_mb else ""
        return f"{where} needs more memory than the render limit{limit} allows"
    if "cycle in page tree" in lowered or "page tree" in lowered:
        return f"broken page tree: {text}"
    if stage == "open":
        # PyMuPDF's own text names the file path; MuPDF's first complaint says what is wrong.
        reason = _first_warning(_warnings()) or type(exc).__name__
        return f"damaged PDF: it cannot be opened ({reason})"
    if stage == "count":
        return f"damaged PDF: its pages cannot be counted ({text})"
    if stage == "load":
        return f"damaged PDF: {where} cannot be read ({text})"
    return f"{where} cannot be rendered: {text}"


def _first_warning(warnings: list[str]) -> str:
    interesting = [w for w in warnings if not w.startswith(("trying to repair", "repairing PDF"))]
    return (interesting or warnings or [""])[0]


def _zoom(rect, limits: RenderLimits) -> float:
    width, height = rect.width, rect.height
    zoom = min(limits.max_side_px / max(width, height), limits.dpi_cap / 72)
    # The pixel budget only bites when it is set below max_side_px².
    zoom = min(zoom, math.sqrt(limits.max_pixels / (width * height)))
    return zoom


def _inches(points: float) -> str:
    return f"{round(points / 72, 1):g}"


def _dhash(image: Image.Image) -> str:
    """64-bit difference hash: robust to scale and small edits, for near-duplicate pages."""
    small = image.convert("L").resize((9, 8), Image.Resampling.BOX)
    pixels = small.tobytes()  # mode L: one byte per pixel, row by row
    bits = 0
    for row in range(8):
        for col in range(8):
            left = pixels[row * 9 + col]
            right = pixels[row * 9 + col + 1]
            bits = (bits << 1) | (left > right)
    return f"{bits:016x}"


def _encode(pix, image: Image.Image, *, photo_like: bool, limits: RenderLimits) -> tuple[bytes, str]:
    """PNG for vector pages; JPEG for scans (PNG too when a low-colour scan makes it smaller); ≤ max bytes.

    `photo_like`: most of the page is a raster image (a scan, OCR'd or not), where JPEG wins.
    """
    candidates = []
    if photo_like:
        candidates.append((_jpeg(image, limits.jpeg_quality), "jpeg"))
        # A bilevel or few-tone scan can be smaller as PNG; a grey or colour scan never is (and PNG of
        # it costs ~1 s), so only those get the second encoding.
        if image.getcolors(16) is not None:
            candidates.append((_png(pix), "png"))
    else:
        candidates.append((_png(pix), "png"))
    data, fmt = min(candidates, key=lambda item: len(item[0]))
    quality = limits.jpeg_quality - 15 if fmt == "jpeg" else limits.jpeg_quality
    while len(data) > limits.max_image_bytes and quality > 20:
        # Only a pathological page gets here (a 2048² PNG of noise); JPEG at falling quality always fits.
        data, fmt = _jpeg(image, quality), "jpeg"
        quality -= 15
    if len(data) > limits.max_image_bytes:
        raise RenderError(f"page image is {len(data):,} bytes even as JPEG: above the {limits.max_image_bytes:,}-byte limit")
    return data, fmt


def _image_coverage(page, rect) -> float:
    """Share of the page area covered by raster images (an OCR'd scan has text, yet is a photo)."""
    try:
        covered = sum(
            abs((_mupdf().Rect(info["bbox"]) & rect).get_area()) for info in page.get_image_info()
        )
    except Exception:
        return 0.0
    return covered / max(rect.get_area(), 1.0)


def _png(pix) -> bytes:
    """RGB PNG straight from the pixmap: no row filter and zlib level 3.

    Drawings are mostly white with thin lines, where filtering buys little: this is about twice as fast
    as MuPDF's or Pillow's encoder (adaptive filters, level 6) for files ~35 % larger, still ~150 KB a sheet.
    """
    width, height, samples = pix.width, pix.height, pix.samples
    stride = width * 3
    raw = b"".join([b"\x00" + samples[row * stride:(row + 1) * stride] for row in range(height)])
    body = zlib.compress(raw, 3)

    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit RGB, no interlace
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", body) + chunk(b"IEND", b"")


def _jpeg(image: Image.Image, quality: int) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=quality, optimize=False)
    return buffer.getvalue()


def render_pdf(path: str, *, out_dir: str, limits: RenderLimits, stem: str = "page") -> RenderResult:
    """Render every page of the PDF at `path` into `out_dir`; raise RenderError with the reason."""
    with open(path, "rb") as handle:
        head = handle.read(SNIFF_BYTES)
    pdf_sniff(head)
    _mupdf().TOOLS.reset_mupdf_warnings()
    try:
        doc = _mupdf().open(path, filetype="pdf")
    except Exception as exc:  # PyMuPDF raises FileDataError, RuntimeError, ValueError... at open
        raise RenderError(_classify("open", exc, memory_mb=limits.memory_limit_mb)) from None
    try:
        return _render_document(doc, path=path, out_dir=out_dir, limits=limits, stem=stem)
    finally:
        doc.close()


def _warnings() -> list[str]:
    return [text_storable(line) for line in _mupdf().TOOLS.mupdf_warnings(reset=False).splitlines() if line.strip()]


# After the last %%EOF: objects or a trailer mean an appended update that was cut short.
_UPDATE_AFTER_EOF = re.compile(rb"\d+\s+\d+\s+obj\b|\bstartxref\b|\btrailer\b")


def _cut_off(path: str) -> bool:
    """True when the file has no %%EOF, or PDF content follows its last one.

    Other bytes after the last %%EOF (a mail footer, padding, junk from a transfer) are ignored, as
    readers do; MuPDF then has to repair the file because it looks for `startxref` near the end only.
    """
    with open(path, "rb") as handle:
        try:
            data = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ)
        except ValueError:  # an empty file cannot be mapped
            return True
        with data:
            last = data.rfind(b"%%EOF")
            return last < 0 or _UPDATE_AFTER_EOF.search(data, last + 5) is not None


# A page smaller than this on a side cannot hold a drawing (a degenerate or near-zero MediaBox): 1 inch.
MIN_PAGE_POINTS = 72


def _page_label(number: int, count: int) -> str:
    return f"page {number}" if count > 1 else "the page"


def _render_document(doc, *, path: str, out_dir: str, limits: RenderLimits, stem: str) -> RenderResult:
    if not doc.is_pdf:
        raise RenderError("not a PDF (MuPDF does not read it as one)")
    if doc.needs_pass:
        raise RenderError("encrypted PDF: a password is needed")
    try:
        count = doc.page_count
    except Exception as exc:
        raise RenderError(_classify("count", exc)) from None
    repaired = bool(doc.is_repaired)
    if repaired and _cut_off(path):
        # MuPDF can rebuild a cut-off file, but what it shows is a partial drawing: not training data.
        raise RenderError(f"damaged PDF: the file is cut off (no %%EOF end-of-file marker; {_first_warning(_warnings())})")
    if count == 0:
        raise RenderError("the PDF has no pages")
    if count > limits.max_pages:
        raise RenderError(f"{count} pages: above the page limit of {limits.max_pages}")

    pages: list[RenderedPage] = []
    left_out: list[str] = []
    has_text_layer = False
    part_number = ""
    material = ""
    for index in range(count):
        number = index + 1
        label = number if count > 1 else None
        try:
            page = doc.load_page(index)
            rect = page.rect  # already rotated: /Rotate 90 gives a portrait rect for a landscape page
        except Exception as exc:
            raise RenderError(_classify("load", exc, page=label, memory_mb=limits.memory_limit_mb)) from None
        if max(rect.width, rect.height) > limits.max_page_points:
            which = f"page {number}" if count > 1 else "page"
            raise RenderError(
                f"{which} is {_inches(rect.width)} × {_inches(rect.height)} in: "
                f"above the {limits.max_page_points:,}-pixel limit"
            )
        if min(rect.width, rect.height) < MIN_PAGE_POINTS:
            left_out.append(
                f"{_page_label(number, count)} is too small to hold a drawing "
                f"({rect.width:.4g} × {rect.height:.4g} pt; the minimum is {MIN_PAGE_POINTS} pt = 1 in a side): left out"
            )
            continue
        zoom = _zoom(rect, limits)
        try:
            # Text extraction interprets the content stream too: its failures are render failures.
            words = page.get_text("words")
            has_images = bool(page.get_images(full=False))
            pix = page.get_pixmap(matrix=_mupdf().Matrix(zoom, zoom), colorspace=_mupdf().csRGB, alpha=False)
            image = Image.frombytes("RGB", (pix.width, pix.height), pix.samples)
        except RenderError:
            raise
        except Exception as exc:
            raise RenderError(_classify("render", exc, page=number, memory_mb=limits.memory_limit_mb)) from None
        # All white, checked by Pillow in C (it stops at a second colour): PyMuPDF 2.0's `Pixmap.is_unicolor`
        # reads the samples one at a time in Python, about half of a page's render time.
        if image.getcolors(1) == [(image.width * image.height, (255, 255, 255))]:
            # Nothing drawn, or nothing MuPDF could draw (a broken content stream): kept, as mainstream readers
            # show it, but flagged so a person checks the file before it becomes training data.
            left_out.append(f"{_page_label(number, count)} is blank (all white after rendering): kept, flagged")
        page_has_text = bool(words)
        has_text_layer = has_text_layer or page_has_text
        if page_has_text and not part_number:
            part_number = text_storable(title_block_part_number(words))
        if page_has_text and not material:
            material = text_storable(title_block_material(words))
        scanned = has_images and not page_has_text
        photo_like = has_images and _image_coverage(page, rect) > 0.5
        data, fmt = _encode(pix, image, photo_like=photo_like, limits=limits)
        del pix
        target = Path(out_dir) / f"{stem}-p{number}.{'jpg' if fmt == 'jpeg' else 'png'}"
        target.write_bytes(data)
        pages.append(
            RenderedPage(
                number=number, path=str(target), width=image.width, height=image.height, format=fmt,
                bytes=len(data), sha256=hashlib.sha256(data).hexdigest(), phash=_dhash(image), scanned=scanned,
            )
        )
    warnings = _warnings()
    if not pages:
        # Blank after rendering with MuPDF complaining usually means damage: say what it said.
        damage = f"; MuPDF reported: {_first_warning(warnings)}" if warnings else ""
        reasons = "; ".join(left_out)
        raise RenderError(f"no page holds a drawing: {reasons}{damage}" if count > 1 else f"{reasons}{damage}")
    return RenderResult(
        pages=pages, has_text_layer=has_text_layer, part_number=part_number, repaired=repaired, warnings=warnings,
        material=material, page_problems=left_out,
    )


# --- Part number from the title block ---------------------------------------------------------------

_LABEL = re.compile(
    r"(drawing|dwg|part|article|item|ident)\s*[-.]?\s*(no\b|no\.|nr\b|nr\.|number|#)"
    r"|zeichnungs-?\s*nr|teile-?\s*nr|sach-?\s*nr|artikel-?\s*nr",
    re.IGNORECASE,
)
_VALUE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 ._/-]{1,38}[A-Za-z0-9]$")


def title_block_part_number(words: list) -> str:
    """The value under (or after) a "Drawing No. / Part No." label; "" when there is none.

    `words` are PyMuPDF words (x0, y0, x1, y1, text, block, line, word). A title block cell has its
    label in small type at the top and the value below it, starting at the same left edge.
    """
    lines: dict[tuple[int, int], list] = {}
    for word in words:
        lines.setdefault((word[5], word[6]), []).append(word)
    boxes = []
    for items in lines.values():
        items.sort(key=lambda w: w[0])
        text = " ".join(w[4] for w in items)
        boxes.append((min(w[0] for w in items), min(w[1] for w in items), max(w[2] for w in items), max(w[3] for w in items), text))
    # The title block sits at the bottom of the sheet: prefer the lowest label.
    labels = sorted((b for b in boxes if _LABEL.search(b[4])), key=lambda b: -b[1])
    for x0, y0, x1, y1, text in labels:
        after = re.split(r"[:#]\s*", text, maxsplit=1)
        if len(after) == 2 and _VALUE.match(after[1].strip()) and any(c.isdigit() for c in after[1]):
            return after[1].strip()
        height = y1 - y0
        below = [
            b for b in boxes
            if b[1] >= y1 - 1 and b[1] <= y1 + 6 * height and abs(b[0] - x0) <= 3 * height and b[4] != text
        ]
        for box in sorted(below, key=lambda b: b[1]):
            value = box[4].strip()
            if _VALUE.match(value) and any(c.isdigit() for c in value):
                return value
    return ""


# How far below the "Material" label (in PDF points) its value may start, and how far right.
_CELL_DEPTH_PT = 14
_CELL_WIDTH_PT = 80


def title_block_material(words: list) -> str:
    """The value printed in the title block's "Material" cell; words are PyMuPDF (x0, y0, x1, y1, text, ...)."""
    labels = [w for w in words if str(w[4]).strip().lower().rstrip(":") in ("material", "werkstoff")]
    for label in labels:
        x0, bottom = label[0], label[3]
        below = [
            w for w in words
            if w is not label and bottom - 0.5 <= w[1] <= bottom + _CELL_DEPTH_PT and x0 - 2 <= w[0] <= x0 + _CELL_WIDTH_PT
        ]
        if below:
            first_line = min(round(w[1]) for w in below)
            line = sorted((w for w in below if abs(round(w[1]) - first_line) <= 1), key=lambda w: w[0])
            return " ".join(str(w[4]) for w in line).strip()
    return ""


def part_number_from_filename(name: str) -> str:
    """"JR_814059.pdf" → "JR 814059": drawings are often saved under their number with _ for spaces."""
    stem = text_storable(Path(name).stem)
    return re.sub(r"[_\s]+", " ", stem).strip()[:100]


# --- Isolation: a capped render process, forked once and reused, with a deadline per drawing -------
#
# The render process is forked from the caller (no new interpreter to start) and serves render requests
# over a pipe, so a worker pays the fork once rather than per drawing and MuPDF's glyph cache stays warm.
# It has an address-space cap; when a render dies (cap, crash, deadline) only that drawing fails and the
# next request starts a fresh process. A process that inherited another's server (an RQ work-horse
# forked after one existed) never talks to it: it starts its own.

_RECYCLE_AFTER = 100  # renders per process: bounds heap fragmentation eating into the memory cap


def _vm_size_bytes() -> int:
    try:
        with open("/proc/self/statm") as handle:
            return int(handle.read().split()[0]) * resource.getpagesize()
    except (OSError, ValueError, IndexError):
        return 0


def _limit_memory(limit_mb: int) -> None:
    # RLIMIT_AS counts address space, and the child starts with the worker's (shared, copy-on-write)
    # mappings: the cap is what is mapped now plus the render's own budget.
    if limit_mb <= 0:
        return
    budget = _vm_size_bytes() + limit_mb * 1024 * 1024
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    if hard != resource.RLIM_INFINITY:
        budget = min(budget, hard)
    resource.setrlimit(resource.RLIMIT_AS, (budget, hard))


try:  # loaded once here: the forked child only calls it
    import ctypes

    _LIBC = ctypes.CDLL("libc.so.6", use_errno=True)
except OSError:
    _LIBC = None


def _die_with_parent() -> None:
    # Linux: a render process orphaned by a killed worker must not keep rendering.
    if _LIBC is not None:
        _LIBC.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def _send(fd: int, payload) -> None:
    data = pickle.dumps(payload)
    view = memoryview(struct.pack(">Q", len(data)) + data)
    while view:
        view = view[os.write(fd, view):]


def _recv_exact(fd: int, size: int, deadline: float | None) -> bytes | None:
    """`size` bytes from fd; None on EOF; raises TimeoutError past the deadline."""
    chunks, missing = [], size
    while missing:
        if deadline is not None:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError
            ready, _, _ = select.select([fd], [], [], remaining)
            if not ready:
                continue
        chunk = os.read(fd, min(missing, 1 << 20))
        if not chunk:
            return None
        chunks.append(chunk)
        missing -= len(chunk)
    return b"".join(chunks)


def _recv(fd: int, deadline: float | None = None):
    header = _recv_exact(fd, 8, deadline)
    if header is None:
        return None
    body = _recv_exact(fd, struct.unpack(">Q", header)[0], deadline)
    return None if body is None else pickle.loads(body)


def _serve(requests: int, responses: int, memory_limit_mb: int) -> None:
    """The render process: one request in, one answer out, until EOF or recycling."""
    _die_with_parent()
    _limit_memory(memory_limit_mb)
    for served in range(1, _RECYCLE_AFTER + 1):
        request = _recv(requests)
        if request is None:
            return
        path, out_dir, limits, stem = request
        retire = served == _RECYCLE_AFTER
        try:
            answer = ("ok", render_pdf(path, out_dir=out_dir, limits=limits, stem=stem))
        except RenderError as exc:
            answer = ("error", exc.message)
            retire = retire or "memory" in exc.message
        except MemoryError:
            answer = ("error", f"the PDF needs more than the {memory_limit_mb:,} MB render memory limit")
            retire = True
        except Exception as exc:
            answer = ("error", f"rendering failed: {type(exc).__name__}: {exc}")
            retire = True
        # Decoded images and fonts of this drawing are no use to the next one: give the memory back.
        _mupdf().TOOLS.store_shrink(100)
        _send(responses, (*answer, retire))
        if retire:
            return


class _RenderProcess:
    def __init__(self, memory_limit_mb: int):
        # Imported in the rendering process before the fork: the child starts warm, and the library does
        # not count against a drawing's memory cap. Processes that never render never import it.
        _mupdf()
        requests_r, requests_w = os.pipe()
        responses_r, responses_w = os.pipe()
        pid = os.fork()
        if pid == 0:  # child: never returns
            code = 0
            try:
                os.close(requests_w)
                os.close(responses_r)
                _serve(requests_r, responses_w, memory_limit_mb)
            except BaseException:
                code = 1
            finally:
                os._exit(code)
        os.close(requests_r)
        os.close(responses_w)
        self.pid, self.owner = pid, os.getpid()
        self.requests, self.responses = requests_w, responses_r
        self.memory_limit_mb = memory_limit_mb

    def stop(self, *, kill: bool = False) -> int:
        """Close the pipes and reap the process; returns its wait status (0 when it was reaped already)."""
        for fd in (self.requests, self.responses):
            try:
                os.close(fd)
            except OSError:
                pass
        if kill:
            try:
                os.kill(self.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        try:
            return os.waitpid(self.pid, 0)[1]
        except ChildProcessError:
            return 0


_process: _RenderProcess | None = None
_lock = threading.Lock()  # one conversation at a time on the pipes


def render_process_pid() -> int | None:
    """The live render process of this process, if any (the benchmark reads its peak RSS)."""
    return _process.pid if _process is not None and _process.owner == os.getpid() else None


def render_process_stop() -> None:
    """Stop this process's render process (tests; a new one starts on the next render)."""
    global _process
    if _process is not None and _process.owner == os.getpid():
        _process.stop(kill=True)
    _process = None


def _render_process(memory_limit_mb: int) -> _RenderProcess:
    global _process
    if _process is not None and _process.owner != os.getpid():
        # Inherited through a fork (an RQ work-horse): the pipes belong to the parent's conversation.
        for fd in (_process.requests, _process.responses):
            try:
                os.close(fd)
            except OSError:
                pass
        _process = None
    if _process is not None and _process.memory_limit_mb != memory_limit_mb:
        render_process_stop()
    if _process is not None and os.waitpid(_process.pid, os.WNOHANG)[0] != 0:
        # Died while idle (killed from outside): not this drawing's fault, start a fresh one.
        _process.stop()
        _process = None
    if _process is None:
        _process = _RenderProcess(memory_limit_mb)
    return _process


def render_isolated(path: str, *, out_dir: str, limits: RenderLimits, stem: str = "page") -> RenderResult:
    """`render_pdf` in the capped render process, within `limits.timeout_seconds`.

    A MemoryError, a crash, a kill or the deadline becomes a RenderError; the caller process is untouched.
    """
    with _lock:
        return _render_isolated(path, out_dir=out_dir, limits=limits, stem=stem)


def _render_isolated(path: str, *, out_dir: str, limits: RenderLimits, stem: str) -> RenderResult:
    global _process
    process = _render_process(limits.memory_limit_mb)
    deadline = time.monotonic() + limits.timeout_seconds
    try:
        _send(process.requests, (path, out_dir, limits, stem))
        answer = _recv(process.responses, deadline)
    except TimeoutError:
        process.stop(kill=True)
        _process = None
        raise RenderError(f"rendering took longer than {limits.timeout_seconds} s and was stopped") from None
    except (BrokenPipeError, OSError):
        answer = None
    except BaseException:
        # Interrupted mid-conversation (RQ's job timeout, Ctrl-C): an answer may still be on its way, and
        # the next request must not read it. Start over with a fresh process.
        process.stop(kill=True)
        _process = None
        raise
    if answer is not None:
        kind, value, retire = answer
        if retire:
            process.stop()
            _process = None
        if kind == "ok":
            return value
        raise RenderError(value)

    # The process died during this render: say how.
    status = process.stop()
    _process = None
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        name = signal.Signals(sig).name if sig in signal.Signals._value2member_map_ else str(sig)
        hint = " (probably out of memory)" if sig in (signal.SIGKILL, signal.SIGSEGV, signal.SIGABRT) else ""
        raise RenderError(f"the renderer crashed on this PDF: killed by {name}{hint}")
    code = os.WEXITSTATUS(status) if os.WIFEXITED(status) else status
    raise RenderError(
        f"the renderer stopped without a result (exit code {code}); the PDF may need more than the "
        f"{limits.memory_limit_mb:,} MB render memory limit"
    )
