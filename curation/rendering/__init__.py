"""PDF drawings → page images, as one package; the only place PyMuPDF is imported (in `pdf.py`). No ORM.

- `sniff`: is the file a PDF, and what it looks like when it is not.
- `pdf`: the render itself (PyMuPDF), page images and what the render noticed.
- `title_block`: part number and material read from the title block's words (and from a file name).
- `isolation`: the capped render process (forked once, reused, a deadline per drawing).
- `results`: what a render returns, its limits, and RenderError in storable words.

Callers use the names below (`from curation import rendering; rendering.render_isolated(...)`).
"""

from curation.rendering.isolation import render_isolated, render_process_pid, render_process_stop
from curation.rendering.pdf import render_pdf
from curation.rendering.results import RenderedPage, RenderError, RenderLimits, RenderResult, text_storable
from curation.rendering.sniff import SNIFF_BYTES, bytes_describe, pdf_sniff
from curation.rendering.title_block import part_number_from_filename, title_block_material, title_block_part_number

__all__ = [
    "SNIFF_BYTES",
    "RenderError",
    "RenderLimits",
    "RenderResult",
    "RenderedPage",
    "bytes_describe",
    "part_number_from_filename",
    "pdf_sniff",
    "render_isolated",
    "render_pdf",
    "render_process_pid",
    "render_process_stop",
    "text_storable",
    "title_block_material",
    "title_block_part_number",
]
