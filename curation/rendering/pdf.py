"""PDF drawing → page images the model can use (≤ 2048 px, RGB, ≤ 10 MB), with a human reason when it cannot.

The only module that imports PyMuPDF (the rest of `curation/rendering/` reaches it through the functions
here); no ORM. `curation.rendering.isolation` runs `render_pdf` in a capped child process.
"""

from __future__ import annotations

import hashlib
import io
import math
import mmap
import re
import struct
import zlib
from collections.abc import Callable
from pathlib import Path

from PIL import Image

from curation.rendering.results import RenderedPage, RenderError, RenderLimits, RenderResult, text_storable
from curation.rendering.sniff import SNIFF_BYTES, pdf_sniff
from curation.rendering.title_block import title_block_material, title_block_part_number

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


def mupdf_preload() -> None:
    """Import PyMuPDF now (the render process's parent does, so each forked child starts warm)."""
    _mupdf()


def mupdf_memory_release() -> None:
    """Give back the decoded images and fonts MuPDF keeps: of no use to the next drawing."""
    _mupdf().TOOLS.store_shrink(100)


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
        raise RenderError(
            f"page image is {len(data):,} bytes even as JPEG: above the {limits.max_image_bytes:,}-byte limit"
        )
    return data, fmt


def _image_coverage(page, rect) -> float:
    """Share of the page area covered by raster images (an OCR'd scan has text, yet is a photo)."""
    try:
        covered = sum(abs((_mupdf().Rect(info["bbox"]) & rect).get_area()) for info in page.get_image_info())
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
    raw = b"".join([b"\x00" + samples[row * stride : (row + 1) * stride] for row in range(height)])
    body = zlib.compress(raw, 3)

    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit RGB, no interlace
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", body) + chunk(b"IEND", b"")


def _jpeg(image: Image.Image, quality: int) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=quality, optimize=False)
    return buffer.getvalue()


def render_pdf(
    path: str,
    *,
    out_dir: str,
    limits: RenderLimits,
    stem: str = "page",
    progress: Callable[[int, int], None] | None = None,
) -> RenderResult:
    """Render every page of the PDF at `path` into `out_dir`; raise RenderError with the reason.

    `progress(done, total)`, when given, hears (0, pages in the PDF) once they are counted, then after each page.
    """
    with open(path, "rb") as handle:
        head = handle.read(SNIFF_BYTES)
    pdf_sniff(head)
    _mupdf().TOOLS.reset_mupdf_warnings()
    try:
        doc = _mupdf().open(path, filetype="pdf")
    except Exception as exc:  # PyMuPDF raises FileDataError, RuntimeError, ValueError... at open
        raise RenderError(_classify("open", exc, memory_mb=limits.memory_limit_mb)) from None
    try:
        return _render_document(doc, path=path, out_dir=out_dir, limits=limits, stem=stem, progress=progress)
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


def _render_document(doc, *, path: str, out_dir: str, limits: RenderLimits, stem: str, progress=None) -> RenderResult:
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
        raise RenderError(
            f"damaged PDF: the file is cut off (no %%EOF end-of-file marker; {_first_warning(_warnings())})"
        )
    if count == 0:
        raise RenderError("the PDF has no pages")
    if count > limits.max_pages:
        raise RenderError(f"{count} pages: above the page limit of {limits.max_pages}")
    progress = progress or (lambda done, total: None)
    progress(0, count)

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
                f"({rect.width:.4g} × {rect.height:.4g} pt; the minimum is {MIN_PAGE_POINTS} pt = 1 in a side): left "
                f"out"
            )
            progress(number, count)
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
                number=number,
                path=str(target),
                width=image.width,
                height=image.height,
                format=fmt,
                bytes=len(data),
                sha256=hashlib.sha256(data).hexdigest(),
                phash=_dhash(image),
                scanned=scanned,
            )
        )
        progress(number, count)
    warnings = _warnings()
    if not pages:
        # Blank after rendering with MuPDF complaining usually means damage: say what it said.
        damage = f"; MuPDF reported: {_first_warning(warnings)}" if warnings else ""
        reasons = "; ".join(left_out)
        raise RenderError(f"no page holds a drawing: {reasons}{damage}" if count > 1 else f"{reasons}{damage}")
    return RenderResult(
        pages=pages,
        has_text_layer=has_text_layer,
        part_number=part_number,
        repaired=repaired,
        warnings=warnings,
        material=material,
        page_problems=left_out,
    )
