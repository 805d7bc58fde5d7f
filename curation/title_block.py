"""Reading fields (the material) from a drawing's title block text layer; scans have no text and give nothing.

The one place besides `rendering.py` that opens a PDF with PyMuPDF: text only, no rendering, so the
memory and page limits that guard rendering are not needed here (the file was already accepted by ingest).
"""
import logging

logger = logging.getLogger(__name__)

# How far below the label (in PDF points) the value of a title-block cell may start.
_CELL_DEPTH_PT = 14
_CELL_WIDTH_PT = 80


def material_from_words(words) -> str:
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


def pdf_material(data: bytes, *, name: str = "drawing") -> str:
    """Material read from the first page carrying a title block; "" for scans or unreadable files."""
    import pymupdf

    try:
        with pymupdf.open(stream=data, filetype="pdf") as doc:
            for page in doc:
                material = material_from_words(page.get_text("words"))
                if material:
                    return material
    except Exception as exc:  # PyMuPDF raises several unrelated types; a missing material is not fatal
        logger.warning("could not read the title block of %s: %s", name, exc)
    return ""
