"""Part number and material read from a drawing's title block (PyMuPDF words), and the part number in a file name.

Plain text rules, no PyMuPDF import and no ORM: the words come from `curation.rendering.pdf`.
"""

from __future__ import annotations

import re
from pathlib import Path

from curation.rendering.results import text_storable

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
        boxes.append(
            (
                min(w[0] for w in items),
                min(w[1] for w in items),
                max(w[2] for w in items),
                max(w[3] for w in items),
                text,
            )
        )
    # The title block sits at the bottom of the sheet: prefer the lowest label.
    labels = sorted((b for b in boxes if _LABEL.search(b[4])), key=lambda b: -b[1])
    for x0, y0, x1, y1, text in labels:
        after = re.split(r"[:#]\s*", text, maxsplit=1)
        if len(after) == 2 and _VALUE.match(after[1].strip()) and any(c.isdigit() for c in after[1]):
            return after[1].strip()
        height = y1 - y0
        below = [
            b
            for b in boxes
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
            w
            for w in words
            if w is not label
            and bottom - 0.5 <= w[1] <= bottom + _CELL_DEPTH_PT
            and x0 - 2 <= w[0] <= x0 + _CELL_WIDTH_PT
        ]
        if below:
            first_line = min(round(w[1]) for w in below)
            line = sorted((w for w in below if abs(round(w[1]) - first_line) <= 1), key=lambda w: w[0])
            return " ".join(str(w[4]) for w in line).strip()
    return ""


def part_number_from_filename(name: str) -> str:
    """ "JR_814059.pdf" → "JR 814059": drawings are often saved under their number with _ for spaces."""
    stem = text_storable(Path(name).stem)
    return re.sub(r"[_\s]+", " ", stem).strip()[:100]
