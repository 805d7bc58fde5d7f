"""Demo drawings written as small vector PDFs by hand (no PyMuPDF): frame, title block, dimensioned views.

`demo_drawing_pdfs()` returns (file name, PDF bytes) for a few parts; the bytes are deterministic, so
ingesting them twice finds the same drawings. The title block carries "Drawing No. / Part No." and
"Material" the way real sheets do, so the render path reads the part number from it.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

MM = 72 / 25.4  # points per millimetre
A3 = (420 * MM, 297 * MM)


@dataclass(frozen=True)
class DemoPart:
    part_number: str
    name: str
    material: str
    kind: str  # "shaft", "flange" or "bracket"
    customer: str
    size: tuple  # the main dimensions in mm, per kind


DEMO_PARTS = [
    DemoPart("DEMO-1001", "Drive shaft", "C45", "shaft", "NORDWERK Antriebe GmbH", (180, 40, 30, 25)),
    DemoPart("DEMO-1002", "Bearing flange", "1.4301", "flange", "HALVARD Pumps AB", (120, 60, 8, 16)),
    DemoPart("DEMO-1003", "Sensor bracket", "EN AW-6082 T6", "bracket", "VOSSBERG Automation AG", (140, 70, 12, 9)),
    DemoPart("DEMO-1004", "Spindle shaft", "42CrMo4", "shaft", "NORDWERK Antriebe GmbH", (240, 50, 36, 28)),
]

# More parts, generated (seeded by their number), so the demo's dataset passes the gates with room to spare:
# at least 10 examples in each split (OpenAI's minimum) and 20 validation examples (the promotion policy's minimum).
GENERATED_PARTS = 40
_NAMES = {
    "shaft": ["Drive shaft", "Pinion shaft", "Output shaft", "Axle pin"],
    "flange": ["Bearing flange", "Pump flange", "Motor flange", "Cover flange"],
    "bracket": ["Sensor bracket", "Mounting bracket", "Cable bracket", "Guide bracket"],
}
_CUSTOMERS = ["NORDWERK Antriebe GmbH", "HALVARD Pumps AB", "VOSSBERG Automation AG", "KARMIN Hydraulik GmbH"]
_MATERIALS = {
    "shaft": ["C45", "42CrMo4", "16MnCr5", "11SMnPb30"],
    "flange": ["1.4301", "S235JR", "S355J2+N", "1.4404"],
    "bracket": ["EN AW-6082 T6", "S235JR", "EN AW-7075 T651"],
}


def _generated_part(number: int) -> DemoPart:
    rng = random.Random(number * 7919)
    kind = ("shaft", "flange", "bracket")[number % 3]
    if kind == "shaft":
        d_big = rng.randrange(30, 62, 2)
        d_mid = d_big - rng.choice((4, 6, 8))
        size = (rng.randrange(120, 270, 10), d_big, d_mid, d_mid - rng.choice((4, 5, 6)))
    elif kind == "flange":
        d_outer = rng.randrange(90, 170, 10)
        size = (d_outer, rng.randrange(30, d_outer // 2, 5), rng.randrange(6, 22, 2), rng.choice((4, 6, 8)))
    else:
        size = (rng.randrange(100, 190, 10), rng.randrange(50, 95, 5), rng.randrange(8, 16), rng.randrange(7, 14, 2))
    return DemoPart(
        f"DEMO-{number}", rng.choice(_NAMES[kind]), rng.choice(_MATERIALS[kind]), kind, rng.choice(_CUSTOMERS), size
    )


def demo_parts() -> list[DemoPart]:
    """The hand-made parts, then the generated ones (DEMO-1005 onwards)."""
    return DEMO_PARTS + [_generated_part(1005 + i) for i in range(GENERATED_PARTS)]


class _Sheet:
    """Collects PDF content-stream operators in millimetres from the bottom-left corner."""

    def __init__(self):
        self.ops: list[str] = []

    def _p(self, value: float) -> str:
        return f"{value * MM:.2f}"

    def width(self, mm: float):
        self.ops.append(f"{mm * MM:.2f} w")

    def dash(self, on: float = 0, off: float = 0):
        self.ops.append(f"[{self._p(on)} {self._p(off)}] 0 d" if on else "[] 0 d")

    def line(self, x1, y1, x2, y2):
        self.ops.append(f"{self._p(x1)} {self._p(y1)} m {self._p(x2)} {self._p(y2)} l S")

    def rect(self, x, y, w, h, fill=False):
        self.ops.append(f"{self._p(x)} {self._p(y)} {self._p(w)} {self._p(h)} re {'f' if fill else 'S'}")

    def circle(self, cx, cy, r):
        # Four Bézier quarter arcs (k = 0.5523 is the usual circle approximation).
        k = 0.5523 * r
        p = self._p
        self.ops.append(
            f"{p(cx + r)} {p(cy)} m "
            f"{p(cx + r)} {p(cy + k)} {p(cx + k)} {p(cy + r)} {p(cx)} {p(cy + r)} c "
            f"{p(cx - k)} {p(cy + r)} {p(cx - r)} {p(cy + k)} {p(cx - r)} {p(cy)} c "
            f"{p(cx - r)} {p(cy - k)} {p(cx - k)} {p(cy - r)} {p(cx)} {p(cy - r)} c "
            f"{p(cx + k)} {p(cy - r)} {p(cx + r)} {p(cy - k)} {p(cx + r)} {p(cy)} c S"
        )

    def text(self, x, y, value: str, size: float = 3.5, bold: bool = False, angle: float = 0):
        font = "F2" if bold else "F1"
        escaped = value.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")
        pt = size * MM
        if angle:
            c, s = math.cos(math.radians(angle)), math.sin(math.radians(angle))
            self.ops.append(
                f"BT /{font} {pt:.2f} Tf {c:.4f} {s:.4f} {-s:.4f} {c:.4f} {self._p(x)} {self._p(y)} Tm ({escaped}) "
                f"Tj ET"
            )
        else:
            self.ops.append(f"BT /{font} {pt:.2f} Tf {self._p(x)} {self._p(y)} Td ({escaped}) Tj ET")

    def arrow(self, x, y, dx, dy):
        # A filled arrow head pointing along (dx, dy), 3 mm long.
        length = math.hypot(dx, dy) or 1
        ux, uy = dx / length, dy / length
        bx, by = x - 3 * ux, y - 3 * uy
        px, py = -uy * 0.9, ux * 0.9
        p = self._p
        self.ops.append(f"{p(x)} {p(y)} m {p(bx + px)} {p(by + py)} l {p(bx - px)} {p(by - py)} l h f")

    def dim_h(self, x1, x2, y_feature, y_line, label):
        """A horizontal dimension between x1 and x2, drawn at y_line, with extension lines."""
        self.width(0.18)
        self.line(x1, y_feature, x1, y_line + (1.5 if y_line > y_feature else -1.5))
        self.line(x2, y_feature, x2, y_line + (1.5 if y_line > y_feature else -1.5))
        self.line(x1, y_line, x2, y_line)
        self.arrow(x1, y_line, -1, 0)
        self.arrow(x2, y_line, 1, 0)
        self.text((x1 + x2) / 2 - len(label) * 0.9, y_line + 1, label)

    def dim_v(self, y1, y2, x_feature, x_line, label):
        self.width(0.18)
        self.line(x_feature, y1, x_line + (1.5 if x_line > x_feature else -1.5), y1)
        self.line(x_feature, y2, x_line + (1.5 if x_line > x_feature else -1.5), y2)
        self.line(x_line, y1, x_line, y2)
        self.arrow(x_line, y1, 0, -1)
        self.arrow(x_line, y2, 0, 1)
        self.text(x_line - 1, (y1 + y2) / 2 - len(label) * 0.9, label, angle=90)


def _frame_and_title_block(s: _Sheet, part: DemoPart, *, date: str):
    width, height = 420, 297
    s.width(0.7)
    s.rect(20, 10, width - 30, height - 20)  # ISO 5457: 20 mm filing margin on the left
    s.width(0.25)
    for i in range(1, 8):  # grid zones along the top and bottom border
        x = 20 + i * (width - 30) / 8
        if x < width - 10 - 180:  # no ticks through the title block
            s.line(x, 10, x, 15)
        s.line(x, height - 15, x, height - 10)
    # Title block: 180 × 56 mm in the bottom-right corner, label small on top, value below.
    x0, y0, w = width - 10 - 180, 10, 180
    s.width(0.5)
    s.rect(x0, y0, w, 56)
    s.width(0.25)
    for y in (14, 28, 42):
        s.line(x0, y0 + y, x0 + w, y0 + y)
    for x in (60, 120):
        s.line(x0 + x, y0, x0 + x, y0 + 56)

    def cell(cx, cy, label, value, size=3.5, bold=False):
        s.text(x0 + cx + 1.5, y0 + cy + 10.5, label, size=1.8)
        s.text(x0 + cx + 1.5, y0 + cy + 3, value, size=size, bold=bold)

    cell(0, 42, "Drawn", "M. Keller")
    cell(60, 42, "Date", date)
    cell(120, 42, "Scale", "1:1")
    cell(0, 28, "Material", part.material, 4)
    cell(60, 28, "Title", part.name, 4.5, True)
    cell(120, 28, "Format", "A3")
    cell(0, 14, "Customer", part.customer, 3)
    cell(60, 14, "Drawing No. / Part No.", part.part_number, 6, True)
    cell(120, 14, "Sheet", "1/1")
    cell(0, 0, "General tolerances", "ISO 2768-mK", 3)
    cell(60, 0, "Surface", "Ra 3.2 unless stated", 3)
    cell(120, 0, "Rev.", "A", 4)
    s.text(
        30,
        20,
        "NOTES: 1. Break sharp edges 0.2-0.5 mm. 2. Unspecified chamfers 0.5x45\xb0. 3. All dimensions in mm.",
        2.5,
    )


def _centre_line(s: _Sheet, x1, y1, x2, y2):
    s.width(0.18)
    s.dash(6, 1.5)
    s.line(x1, y1, x2, y2)
    s.dash()


def _shaft(s: _Sheet, part: DemoPart):
    length, d_big, d_mid, d_small = part.size
    x0, cy = 60, 170
    steps = [(0.25, d_small), (0.45, d_big), (0.3, d_mid)]
    _centre_line(s, x0 - 8, cy, x0 + length + 8, cy)
    s.width(0.5)
    x = x0
    edges = [x0]
    for fraction, diameter in steps:
        w = fraction * length
        s.rect(x, cy - diameter / 2, w, diameter)
        x += w
        edges.append(x)
    # Keyway on the middle step, and a chamfer hint on both ends.
    s.rect(edges[1] + 10, cy + d_big / 2 - 4, 30, 4)
    s.dim_h(edges[0], edges[-1], cy - d_big / 2, cy - d_big / 2 - 18, f"{length} \xb10.1")
    s.dim_h(edges[0], edges[1], cy + d_small / 2, cy + d_big / 2 + 10, f"{steps[0][0] * length:g}")
    s.dim_h(edges[2], edges[3], cy + d_mid / 2, cy + d_big / 2 + 10, f"{steps[2][0] * length:g}")
    s.dim_v(cy - d_big / 2, cy + d_big / 2, edges[2] - 20, edges[2] - 20, f"\xd8{d_big} h6")
    s.dim_v(cy - d_small / 2, cy + d_small / 2, x0, x0 - 12, f"\xd8{d_small} k6")
    s.dim_v(cy - d_mid / 2, cy + d_mid / 2, edges[3], edges[3] + 12, f"\xd8{d_mid}")
    # End view.
    ex = x0 + length + 70
    _centre_line(s, ex - d_big / 2 - 8, cy, ex + d_big / 2 + 8, cy)
    _centre_line(s, ex, cy - d_big / 2 - 8, ex, cy + d_big / 2 + 8)
    s.width(0.5)
    s.circle(ex, cy, d_big / 2)
    s.circle(ex, cy, d_small / 2)
    s.text(ex - 10, cy - d_big / 2 - 14, "Keyway 8 P9 x 30", 2.5)


def _flange(s: _Sheet, part: DemoPart):
    d_outer, d_bore, thickness, n_holes = part.size
    cx, cy = 110, 170
    _centre_line(s, cx - d_outer / 2 - 10, cy, cx + d_outer / 2 + 10, cy)
    _centre_line(s, cx, cy - d_outer / 2 - 10, cx, cy + d_outer / 2 + 10)
    s.width(0.5)
    s.circle(cx, cy, d_outer / 2)
    s.circle(cx, cy, d_bore / 2)
    pitch = (d_outer + d_bore) / 4
    s.width(0.18)
    s.dash(6, 1.5)
    s.circle(cx, cy, pitch)
    s.dash()
    s.width(0.5)
    holes = int(n_holes) if n_holes < 12 else 6
    for i in range(holes):
        angle = 2 * math.pi * i / holes
        s.circle(cx + pitch * math.cos(angle), cy + pitch * math.sin(angle), 4.5)
    s.text(cx + d_outer / 2 + 4, cy + d_outer / 2 - 4, f"{holes}x \xd89 THRU on PCD {2 * pitch:g}", 3)
    s.dim_h(cx - d_outer / 2, cx + d_outer / 2, cy - d_outer / 2, cy - d_outer / 2 - 14, f"\xd8{d_outer}")
    s.dim_h(cx - d_bore / 2, cx + d_bore / 2, cy, cy + d_outer / 2 + 10, f"\xd8{d_bore} H7")
    # Section view to the right.
    sx = cx + d_outer / 2 + 70
    s.width(0.5)
    s.rect(sx, cy - d_outer / 2, thickness, d_outer)
    s.width(0.18)
    for k in range(0, int(d_outer), 5):  # hatching of the cut surface
        s.line(sx, cy - d_outer / 2 + k, sx + thickness, cy - d_outer / 2 + min(k + thickness, d_outer))
    s.dim_h(sx, sx + thickness, cy + d_outer / 2, cy + d_outer / 2 + 10, f"{thickness} \xb10.05")
    s.text(sx - 4, cy + d_outer / 2 + 22, "SECTION A-A", 3.5, True)


def _bracket(s: _Sheet, part: DemoPart):
    length, height, thickness, hole = part.size
    x0, y0 = 60, 120
    s.width(0.5)
    s.rect(x0, y0, length, thickness)  # base plate (front view)
    s.rect(x0, y0 + thickness, thickness, height - thickness)  # upright
    # Top view with the hole pattern.
    ty = y0 + height + 30
    s.rect(x0, ty, length, 50)
    for hx in (x0 + 25, x0 + length - 25):
        s.circle(hx, ty + 25, hole / 2)
        _centre_line(s, hx - 8, ty + 25, hx + 8, ty + 25)
    s.dim_h(x0, x0 + length, y0, y0 - 14, f"{length} \xb10.2")
    s.dim_v(y0, y0 + height, x0, x0 - 12, f"{height}")
    s.dim_h(x0 + 25, x0 + length - 25, ty + 50, ty + 62, f"{length - 50} \xb10.05")
    s.text(x0 + length + 6, ty + 24, f"2x \xd8{hole} THRU", 3)
    s.text(x0 + length + 6, y0 + 4, f"t = {thickness}", 3)


def _pdf(content: bytes, *, title: str) -> bytes:
    """A one-page PDF with Helvetica (WinAnsi: Ø ± ° print) and a correct xref table."""
    width, height = A3
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        (
            f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 {width:.2f} {height:.2f}] "
            f"/Resources << /Font << /F1 5 0 R /F2 6 0 R >> >> /Contents 4 0 R >>"
        ).encode(),
        b"<< /Length " + str(len(content)).encode() + b" >>\nstream\n" + content + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica-Bold /Encoding /WinAnsiEncoding >>",
        b"<< /Title (" + title.encode("latin-1") + b") /Producer (Gestima Studio demo) >>",
    ]
    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += f"{number} 0 obj\n".encode() + body + b"\nendobj\n"
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n".encode() + b"0000000000 65535 f \n"
    for offset in offsets:
        out += f"{offset:010d} 00000 n \n".encode()
    out += f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R /Info 7 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    return bytes(out)


def demo_drawing_pdf(part: DemoPart, *, date: str = "2025-03-14") -> bytes:
    sheet = _Sheet()
    sheet.ops.append("0 0 0 RG 0 0 0 rg 1 J 1 j")
    {"shaft": _shaft, "flange": _flange, "bracket": _bracket}[part.kind](sheet, part)
    _frame_and_title_block(sheet, part, date=date)
    content = "\n".join(sheet.ops).encode("latin-1")
    return _pdf(content, title=f"{part.part_number} {part.name}")


def demo_drawing_pdfs() -> list[tuple[str, bytes]]:
    """(file name, PDF bytes) of every demo part, e.g. ("DEMO-1001.pdf", b"%PDF-1.4...")."""
    return [(f"{part.part_number}.pdf", demo_drawing_pdf(part)) for part in demo_parts()]
