"""curation.rendering on real PDFs: sizes, formats, rotation, part numbers, hostile files.

The capped render process has its own tests: test_render_isolation.py."""

import io
import json
import os
import random
import zipfile

import pytest
from PIL import Image

from curation import rendering
from curation.demo.drawings import DEMO_PARTS, demo_drawing_pdfs
from tests.curation.pdfs import pdf_with_pages, pdf_with_raw_bytes_in_warnings

LIMITS = rendering.RenderLimits()


def render(path, tmp_path, limits=LIMITS):
    return rendering.render_isolated(str(path), out_dir=str(tmp_path), limits=limits)


def failure(path, tmp_path, limits=LIMITS) -> str:
    with pytest.raises(rendering.RenderError) as caught:
        render(path, tmp_path, limits)
    return caught.value.message


def test_sniff_names_what_the_bytes_look_like():
    png = io.BytesIO()
    Image.new("RGB", (4, 4)).save(png, "PNG")
    jpeg = io.BytesIO()
    Image.new("RGB", (4, 4)).save(jpeg, "JPEG")
    docx = io.BytesIO()
    with zipfile.ZipFile(docx, "w") as archive:
        archive.writestr("word/document.xml", "<w:document/>")
    cases = {
        png.getvalue(): "not a PDF (looks like PNG)",
        jpeg.getvalue(): "not a PDF (looks like JPEG)",
        docx.getvalue(): "not a PDF (looks like a .docx Word document)",
        b"<!DOCTYPE html><html><body>login</body></html>": (
            "not a PDF (looks like an HTML page, e.g. a login or error page saved in place of the file)"
        ),
        b"part_number;pieces\nA-1;3\n": "not a PDF (looks like text): no %PDF- header in the first 1024 bytes",
        bytes(range(256)) * 8: "not a PDF (looks like binary data): no %PDF- header in the first 1024 bytes",
        b"": "empty file: 0 bytes",
        # The start of a PDF is missing: its objects are there, its header is not.
        b"4 0 obj\n<< /Length 10 >>\nstream\n"
        + bytes(range(128, 256))
        + b"\nendstream\nendobj\n": "damaged PDF: no %PDF- header in the first 1024 bytes, though it holds PDF objects "
        "(the start of the file is missing)",
        b"\x00" * 2000 + b"%PDF-1.7\n": (
            "not a PDF as readers see it: its %PDF- header is at byte 2,000, after the first 1024 bytes where "
            "PDF readers look for it (something was put in front of it)"
        ),
    }
    for head, message in cases.items():
        with pytest.raises(rendering.RenderError) as caught:
            rendering.pdf_sniff(head)
        assert caught.value.message == message
    rendering.pdf_sniff(b"%PDF-1.7\n")  # no error
    rendering.pdf_sniff(bytes(range(256)) * 3 + b"%PDF-1.7\n")  # junk before the header, inside 1024 bytes


def test_junk_before_the_header_is_ignored_as_readers_do(corpus, tmp_path):
    # A MacBinary block or mail headers in front of %PDF-: Acrobat, MuPDF and poppler read the drawing.
    drawing = (corpus / "drawings" / "JR_814059.pdf").read_bytes()
    for prefix in (bytes(range(256)) * 2, b"Content-Type: application/pdf\r\n\r\n"):
        path = tmp_path / "prefixed.pdf"
        path.write_bytes(prefix + drawing)
        result = render(path, tmp_path)
        assert result.page_count == 1 and result.part_number == "JR 814059"


def test_garbage_after_the_end_marker_is_ignored_but_a_cut_off_update_is_not(corpus, tmp_path):
    drawing = (corpus / "drawings" / "JR_814059.pdf").read_bytes()
    garbage = random.Random(7).randbytes(5000)  # more than the 1 KB MuPDF searches for startxref
    path = tmp_path / "trailing.pdf"
    path.write_bytes(drawing + garbage)
    result = render(path, tmp_path)
    assert result.page_count == 1 and result.part_number == "JR 814059" and result.repaired

    # An update appended after %%EOF and cut off in the middle is still a cut-off file.
    update = b"\n12 0 obj\n<< /Length 9000 >>\nstream\n" + b"0 0 m 100 100 l S\n" * 300
    path.write_bytes(drawing + update)
    assert failure(path, tmp_path).startswith("damaged PDF: the file is cut off")


def test_warnings_quoting_raw_bytes_from_the_file_are_storable_text(tmp_path):
    # MuPDF quotes the file's bytes in its warnings; PyMuPDF passes 0xE3 on as a lone surrogate, which no
    # database can store. They come back written as \xe3.
    path = tmp_path / "raw.pdf"
    path.write_bytes(pdf_with_raw_bytes_in_warnings())
    result = render(path, tmp_path)
    assert result.page_count == 1 and result.part_number == "RAW-0042"
    assert "syntax error: cannot find ColorSpace resource 'CS\\xe3'" in result.warnings
    for text in [*result.warnings, result.material, result.part_number]:
        text.encode("utf-8")  # raises on a lone surrogate


def test_text_storable_escapes_what_a_database_refuses():
    assert rendering.text_storable("CS\udce3 a\x00b \ud800 Maß\tok\n") == "CS\\xe3 a\\x00b \ufffd Maß\tok\n"
    assert rendering.RenderError("bad \udcff").message == "bad \\xff"


def test_tiny_pages_are_left_out_and_blank_pages_kept_but_flagged_with_their_reason(tmp_path):
    path = tmp_path / "three.pdf"
    path.write_bytes(pdf_with_pages("drawing", "blank", "tiny"))
    result = render(path, tmp_path)
    assert [page.number for page in result.pages] == [1, 2] and result.part_number == "TB-4711"
    assert result.page_problems == [
        "page 2 is blank (all white after rendering): kept, flagged",
        "page 3 is too small to hold a drawing (1 × 1 pt; the minimum is 72 pt = 1 in a side): left out",
    ]


def test_a_drawing_of_only_blank_pages_renders_flagged(tmp_path):
    """Mainstream readers show a blank page (qpdf's broken-lzw.pdf is one): kept, and flagged for a person."""
    path = tmp_path / "blank.pdf"
    path.write_bytes(pdf_with_pages("blank"))
    result = render(path, tmp_path)
    assert result.page_count == 1
    assert result.page_problems == ["the page is blank (all white after rendering): kept, flagged"]


@pytest.mark.parametrize(
    "pages, message",
    [
        (["tiny"], "the page is too small to hold a drawing (1 × 1 pt; the minimum is 72 pt = 1 in a side): left out"),
        (
            ["tiny", "tiny"],
            "no page holds a drawing: page 1 is too small to hold a drawing (1 × 1 pt; the minimum is "
            "72 pt = 1 in a side): left out; page 2 is too small to hold a drawing (1 × 1 pt; the minimum "
            "is 72 pt = 1 in a side): left out",
        ),
    ],
)
def test_a_drawing_without_a_usable_page_fails_with_the_reason(tmp_path, pages, message):
    path = tmp_path / "bad.pdf"
    path.write_bytes(pdf_with_pages(*pages))
    assert failure(path, tmp_path) == message


def test_corpus_drawings_render_within_openai_limits(corpus, tmp_path):
    truth = json.loads((corpus / "ground_truth.json").read_text())["parts"]
    # A sample of each kind here (the full corpus goes through the worker in test_drawings).
    picked = {
        pn: info
        for pn, info in truth.items()
        if pn in {"JR 814059", "PDM-281147", "10119939", "PDM-280686", "JR 810952"}
    }
    assert len(picked) == 5
    for part_number, info in picked.items():
        result = render(corpus / info["file"], tmp_path)
        assert result.page_count == info["pages"], part_number
        assert result.has_text_layer is (not info["scanned"]), part_number
        for page in result.pages:
            assert max(page.width, page.height) == 2048
            assert page.bytes <= 10 * 1024 * 1024 and os.path.getsize(page.path) == page.bytes
            image = Image.open(page.path)
            assert image.mode == "RGB" and image.size == (page.width, page.height)
            assert page.format == ("jpeg" if info["scanned"] else "png") and image.format == page.format.upper()
            assert len(page.phash) == 16 and int(page.phash, 16) > 0


def test_part_number_comes_from_the_title_block(corpus, tmp_path):
    result = render(corpus / "drawings" / "JR_814059.pdf", tmp_path)
    assert result.part_number == "JR 814059"
    # A scan has no text layer: the caller falls back to the file name.
    assert render(corpus / "drawings" / "JR_810952.pdf", tmp_path).part_number == ""
    assert rendering.part_number_from_filename("JR_810952.pdf") == "JR 810952"


def test_rotation_is_honoured(corpus, tmp_path):
    page = render(corpus / "bad" / "rotate90_landscape_page.pdf", tmp_path).pages[0]
    assert page.height > page.width  # /Rotate 90 on a landscape page shows portrait


@pytest.mark.parametrize(
    "name, message",
    [
        ("encrypted_user_password.pdf", "encrypted PDF: a password is needed"),
        ("png_image_renamed.pdf", "not a PDF (looks like PNG)"),
        ("page_200x200_inch.pdf", "page is 200 × 200 in: above the 10,000-pixel limit"),
        ("blank_500_pages.pdf", "500 pages: above the page limit of 50"),
        ("empty_0_bytes.pdf", "empty file: 0 bytes"),
        ("text_file_renamed.pdf", "not a PDF (looks like text): no %PDF- header in the first 1024 bytes"),
    ],
)
def test_hostile_files_fail_with_a_message_a_person_understands(corpus, tmp_path, name, message):
    assert failure(corpus / "bad" / name, tmp_path) == message


def test_damaged_files_say_damaged(corpus, tmp_path):
    assert failure(corpus / "bad" / "truncated_40_percent.pdf", tmp_path).startswith("damaged PDF: the file is cut off")
    message = failure(corpus / "bad" / "pdf_header_random_bytes.pdf", tmp_path)
    assert message.startswith("damaged PDF: it cannot be opened") and str(corpus) not in message  # no server paths


def test_repaired_file_renders_flagged_with_warnings(corpus, tmp_path):
    result = render(corpus / "qpdf" / "bad2.pdf", tmp_path)
    assert result.repaired and result.warnings and result.page_count == 1
    clean = render(corpus / "qpdf" / "minimal.pdf", tmp_path)
    assert not clean.repaired and clean.warnings == []


def test_near_duplicate_pages_have_close_hashes(corpus, tmp_path):
    a = render(corpus / "bad" / "javascript_openaction.pdf", tmp_path).pages[0].phash
    b = render(corpus / "bad" / "corrupt_xref_table.pdf", tmp_path / "..").pages[0].phash  # the same sheet, repaired
    other = render(corpus / "drawings" / "JR_810952.pdf", tmp_path).pages[0].phash
    distance = lambda x, y: bin(int(x, 16) ^ int(y, 16)).count("1")  # noqa: E731
    assert distance(a, b) <= 2 < distance(a, other)


def test_demo_drawings_render_and_show_their_part_number(tmp_path):
    for (name, data), part in zip(demo_drawing_pdfs(), DEMO_PARTS):
        path = tmp_path / name
        path.write_bytes(data)
        result = render(path, tmp_path)
        assert result.part_number == part.part_number
        assert result.has_text_layer and not result.repaired and result.warnings == []
        assert (result.pages[0].width, result.pages[0].height) == (2048, 1449)  # A3 landscape
    assert demo_drawing_pdfs() == demo_drawing_pdfs()  # deterministic: a second ingest dedups


def test_a_page_above_the_byte_limit_is_re_encoded_to_fit(corpus, tmp_path):
    # The scan is ~390 KB as JPEG at quality 85; with a 300 KB limit it comes back at a lower quality.
    scan = corpus / "drawings" / "10134767.pdf"
    assert render(scan, tmp_path).pages[0].bytes > 300 * 1024
    page = render(scan, tmp_path, rendering.RenderLimits(max_image_bytes=300 * 1024)).pages[0]
    assert page.format == "jpeg" and page.bytes <= 300 * 1024
    assert Image.open(page.path).size == (2048, 1449)
    impossible = rendering.RenderLimits(max_image_bytes=1000)
    assert "above the 1,000-byte limit" in failure(scan, tmp_path, impossible)


def test_an_ocr_scan_is_still_written_as_jpeg(corpus, tmp_path):
    # A scan with an invisible text layer (OCR): vector by the text test, but a photo for the encoder.
    import pymupdf  # only to build the input; the code under test is curation.rendering

    source = pymupdf.open(corpus / "drawings" / "10119939.pdf")
    source.select([0])
    source[0].insert_text((50, 50), "OCR 10119939", render_mode=3)
    path = tmp_path / "ocr.pdf"
    source.save(path)
    result = render(path, tmp_path)
    assert result.has_text_layer and result.pages[0].format == "jpeg"
