"""PDFs for rendering tests that the shared corpus does not have, built with PyMuPDF (input only: the code
under test is curation.rendering)."""

import pymupdf

A4 = (595, 842)


def pdf_with_pages(*pages: str) -> bytes:
    """One page per item: "drawing" (A4 with a title block), "blank" (A4, nothing drawn) or "tiny"
    (a near-zero MediaBox, which MuPDF reads as 1 × 1 pt)."""
    doc = pymupdf.open()
    for kind in pages:
        page = doc.new_page(width=A4[0], height=A4[1])
        if kind == "drawing":
            page.draw_rect(pymupdf.Rect(20, 20, A4[0] - 20, A4[1] - 20), width=1)
            page.insert_text((400, 800), "Drawing No.: TB-4711", fontsize=9)
        elif kind == "tiny":
            page.insert_text((0.1, 0.5), "x", fontsize=1)
            doc.xref_set_key(page.xref, "MediaBox", "[0 0 0.001 0.001]")
        else:
            assert kind == "blank", kind
    return doc.tobytes()


def pdf_with_raw_bytes_in_warnings() -> bytes:
    """A drawing that MuPDF and poppler render, whose content stream names resources with non-UTF-8 bytes
    (0xE3, as a Shift-JIS or Latin-1 producer writes them): MuPDF's warnings quote those bytes raw."""
    doc = pymupdf.open()
    page = doc.new_page(width=A4[0], height=A4[1])
    page.draw_rect(pymupdf.Rect(20, 20, A4[0] - 20, A4[1] - 20), width=1)
    page.insert_text((400, 800), "Drawing No.: RAW-0042", fontsize=9)
    page.clean_contents()
    xref = page.get_contents()[0]
    doc.update_stream(xref, doc.xref_stream(xref) + b"\n/CS\xe3 cs /GS\xe3\x81 gs\n")
    return doc.tobytes()


def pdf_repeated(path, times: int) -> bytes:
    """The pages of the PDF at `path`, `times` over: a long drawing whose render takes seconds (live progress)."""
    source = pymupdf.open(path)
    doc = pymupdf.open()
    for _ in range(times):
        doc.insert_pdf(source)
    return doc.tobytes()
