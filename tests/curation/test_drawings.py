"""Drawings end to end: ingest, real Redis + burst worker renders, bad files, re-render, reconcile, admin, CLI."""

import hashlib
import json
import os
from pathlib import Path

import django_rq
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.urls import reverse
from PIL import Image

from curation.models import Drawing, DrawingPage
from curation.services.drawing_uploads import DrawingRejected, drawing_ingest
from curation.services.drawings import drawing_render_again, drawing_render_job_id, drawings_reconcile
from gestima.queues import QueueUnavailable
from tests.curation.pdfs import pdf_with_pages, pdf_with_raw_bytes_in_warnings
from tests.factories import make_user

pytestmark = pytest.mark.django_db

# What each hostile file must end as (the folder READMEs): "rejected" at upload, "failed" after the
# render with this message prefix, or "rendered" (optionally repaired).
BAD = {
    "truncated_40_percent.pdf": ("failed", "damaged PDF: the file is cut off"),
    "corrupt_xref_table.pdf": ("rendered", "repaired"),
    "encrypted_user_password.pdf": ("failed", "encrypted PDF: a password is needed"),
    "empty_0_bytes.pdf": ("rejected", "empty file: 0 bytes"),
    "png_image_renamed.pdf": ("rejected", "not a PDF (looks like PNG)"),
    "text_file_renamed.pdf": ("rejected", "not a PDF (looks like text): no %PDF- header in the first 1024 bytes"),
    "page_200x200_inch.pdf": ("failed", "page is 200 × 200 in: above the 10,000-pixel limit"),
    "blank_500_pages.pdf": ("failed", "500 pages: above the page limit of 50"),
    "single_image_20000x20000_1bit.pdf": ("rendered", ""),
    "pdf_header_random_bytes.pdf": ("failed", "damaged PDF: it cannot be opened"),
    "javascript_openaction.pdf": ("rendered", ""),
    "rotate90_landscape_page.pdf": ("rendered", "portrait"),
}
QPDF = {
    "bad1.pdf": ("rejected", "not a PDF (looks like text)"),
    "issue-263.pdf": ("rejected", "damaged PDF: unreadable header"),
    "empty.pdf": ("failed", "the PDF has no pages"),
    "deep-pages.pdf": ("failed", "broken page tree"),
    "issue-1688a.pdf": ("failed", "page 1 cannot be rendered: too many color components"),
    "enc-XI-R6,V5,U=view,O=master.pdf": ("failed", "encrypted PDF: a password is needed"),
    "encrypted-40-bit-R3.pdf": ("failed", "encrypted PDF: a password is needed"),
    "bad2.pdf": ("rendered", "repaired"),
    "bad7.pdf": ("rendered", "repaired"),
    "bad24.pdf": ("rendered", "warnings"),
    # Its only page comes out all white (the LZW content stream is broken): rendered (partly), as the README
    # says, with the page flagged blank and MuPDF's complaint among the warnings.
    "broken-lzw.pdf": ("rendered", "warnings"),
    "bad-jpeg.pdf": ("rendered", "warnings"),
    "pages-loop.pdf": ("rendered", ""),
    "minimal.pdf": ("rendered", ""),
}


def ingest(path: Path, **kwargs):
    return drawing_ingest(content=path.read_bytes(), original_name=path.name, **kwargs)


def render_queue_ids():
    return set(django_rq.get_queue("render").get_job_ids())


def test_every_corpus_drawing_renders_through_the_worker(corpus, run_worker, django_capture_on_commit_callbacks):
    truth = json.loads((corpus / "ground_truth.json").read_text())["parts"]
    with django_capture_on_commit_callbacks(execute=True):
        drawings = {pn: ingest(corpus / info["file"])[0] for pn, info in truth.items()}
    assert len(render_queue_ids()) == len(truth) == 38
    run_worker("render")
    for part_number, info in truth.items():
        drawing = drawings[part_number]
        drawing.refresh_from_db()
        assert drawing.status == Drawing.Status.RENDERED, (part_number, drawing.error)
        assert drawing.part_number == part_number  # title block for vector sheets, file name for scans
        assert drawing.page_count == info["pages"] == drawing.pages.count()
        assert drawing.has_text_layer is (not info["scanned"])
        for page in drawing.pages.all():
            assert max(page.width, page.height) <= 2048 and page.bytes <= 10 * 1024 * 1024
            with page.image.open("rb") as handle:
                image = Image.open(handle)
                assert image.mode == "RGB" and image.size == (page.width, page.height)
                assert image.format.lower() == page.format


def test_bad_files_end_as_the_readmes_say_and_the_batch_still_renders(
    corpus, run_worker, django_capture_on_commit_callbacks
):
    files = (
        [corpus / "bad" / n for n in BAD]
        + [corpus / "qpdf" / n for n in QPDF]
        + [corpus / "drawings" / "JR_814059.pdf"]
    )
    expected = {**BAD, **QPDF, "JR_814059.pdf": ("rendered", "")}
    drawings, rejected = {}, {}
    with django_capture_on_commit_callbacks(execute=True):
        for path in files:
            try:
                drawings[path.name] = ingest(path)[0]
            except DrawingRejected as exc:
                rejected[path.name] = exc.message
    worker = run_worker("render")
    assert worker.get_state() != "busy"  # the worker came back from every job
    for name, (outcome, detail) in expected.items():
        if outcome == "rejected":
            assert rejected[name].startswith(detail), name
            continue
        drawing = drawings[name]
        drawing.refresh_from_db()
        assert drawing.status == outcome, (name, drawing.error)
        if outcome == "failed":
            assert drawing.error.startswith(detail), (name, drawing.error)
            assert drawing.pages.count() == 0
        else:
            assert drawing.error == "" and drawing.pages.count() >= 1
            page = drawing.pages.first()
            assert max(page.width, page.height) == 2048
            if detail == "repaired":
                assert drawing.repaired and drawing.warning_count > 0
            if detail == "warnings":
                assert drawing.warning_count > 0 and drawing.warnings
            if detail == "portrait":
                assert page.height > page.width
    assert not Drawing.objects.filter(original_name__in=list(rejected)).exists()  # rejected: nothing stored


def test_render_job_twice_and_render_again_do_not_duplicate_pages(
    corpus, run_worker, django_capture_on_commit_callbacks, settings
):
    from curation.jobs import drawing_render_job

    with django_capture_on_commit_callbacks(execute=True):
        drawing, created = ingest(corpus / "drawings" / "PDM-280686.pdf")  # 3 sheets
    run_worker("render")
    assert drawing_render_job(drawing.pk) == "rendered"  # second run: finds the work done
    pages = list(drawing.pages.order_by("number"))
    assert [p.number for p in pages] == [1, 2, 3]
    old_files = [Path(settings.MEDIA_ROOT) / p.image.name for p in pages]
    assert all(f.exists() for f in old_files)

    with django_capture_on_commit_callbacks(execute=True):
        assert drawing_render_again(drawings=[drawing]) == 1
    with django_capture_on_commit_callbacks(execute=True):
        run_worker("render")
    drawing.refresh_from_db()
    assert drawing.status == Drawing.Status.RENDERED
    again = list(drawing.pages.order_by("number"))
    assert [p.pk for p in again] == [p.pk for p in pages]  # same rows: examples' page refs survive
    assert [p.sha256 for p in again] == [p.sha256 for p in pages]
    assert DrawingPage.objects.filter(drawing=drawing).count() == 3
    assert not any(f.exists() for f in old_files)  # old image files removed
    assert all((Path(settings.MEDIA_ROOT) / p.image.name).exists() for p in again)


def test_duplicate_upload_returns_the_existing_drawing(corpus, django_capture_on_commit_callbacks):
    path = corpus / "drawings" / "10113153.pdf"
    with django_capture_on_commit_callbacks(execute=True):
        first, created = ingest(path)
        second, created_again = drawing_ingest(content=path.read_bytes(), original_name="renamed copy.pdf")
    assert created and not created_again and second.pk == first.pk
    assert Drawing.objects.count() == 1 and render_queue_ids() == {drawing_render_job_id(first.pk)}


def test_enqueue_happens_only_after_commit(corpus, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        drawing, _ = ingest(corpus / "drawings" / "10113153.pdf")
        assert render_queue_ids() == set()  # inside the transaction: nothing queued yet
    assert len(callbacks) == 1
    callbacks[0]()
    assert render_queue_ids() == {f"render-drawing-{drawing.pk}"}


def test_redis_away_keeps_the_drawing_then_reconcile_queues_it_once(
    corpus, settings, django_capture_on_commit_callbacks
):
    working = settings.RQ_QUEUES
    settings.RQ_QUEUES = {name: {**conf, "URL": "redis://127.0.0.1:1/0"} for name, conf in working.items()}
    with pytest.raises(QueueUnavailable):
        ingest(corpus / "drawings" / "10113153.pdf")
    drawing = Drawing.objects.get()
    assert drawing.status == Drawing.Status.UPLOADED and Path(drawing.file.path).exists()

    settings.RQ_QUEUES = working
    with django_capture_on_commit_callbacks(execute=True):
        assert drawings_reconcile() == 1
    with django_capture_on_commit_callbacks(execute=True):
        assert drawings_reconcile() == 0  # deterministic job id: still queued, not queued twice
    assert django_rq.get_queue("render").count == 1


def test_reconcile_requeues_a_drawing_stuck_rendering(corpus, run_worker, django_capture_on_commit_callbacks, settings):
    from django.utils import timezone
    from datetime import timedelta

    with django_capture_on_commit_callbacks(execute=True):
        drawing, _ = ingest(corpus / "drawings" / "10113153.pdf", enqueue=False)
    # A worker was killed mid-render long ago: the row says rendering, no job exists.
    Drawing.objects.filter(pk=drawing.pk).update(
        status=Drawing.Status.RENDERING, updated_at=timezone.now() - timedelta(hours=1)
    )
    with django_capture_on_commit_callbacks(execute=True):
        assert drawings_reconcile() == 1
    run_worker("render")
    drawing.refresh_from_db()
    assert drawing.status == Drawing.Status.RENDERED and drawing.pages.count() == 1


def test_a_crashed_job_is_stored_on_the_row(corpus, run_worker, django_capture_on_commit_callbacks, monkeypatch):
    from curation import rendering

    def explode(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(rendering, "render_isolated", explode)
    with django_capture_on_commit_callbacks(execute=True):
        drawing, _ = ingest(corpus / "drawings" / "10113153.pdf")
    run_worker("render")
    drawing.refresh_from_db()
    assert drawing.status == Drawing.Status.FAILED
    assert drawing.error == "rendering stopped: RuntimeError: disk full"


# --- admin ---------------------------------------------------------------------------------------


def test_admin_upload_of_several_files_reports_each(client, corpus, roles, django_capture_on_commit_callbacks):
    client.force_login(make_user("Manager"))
    good = corpus / "drawings" / "JR_814059.pdf"
    ingest_first = corpus / "drawings" / "10113153.pdf"
    with django_capture_on_commit_callbacks(execute=True):
        existing, _ = ingest(ingest_first)
        response = client.post(
            reverse("admin:curation_drawing_upload"),
            {
                "files": [
                    SimpleUploadedFile(good.name, good.read_bytes(), "application/pdf"),
                    SimpleUploadedFile("copy.pdf", ingest_first.read_bytes(), "application/pdf"),
                    SimpleUploadedFile(
                        "photo.pdf", (corpus / "bad" / "png_image_renamed.pdf").read_bytes(), "application/pdf"
                    ),
                ]
            },
        )
    assert response.status_code == 200
    html = response.content.decode()
    assert "1 new, 1 already uploaded, 1 rejected." in html
    assert "not a PDF (looks like PNG)" in html and "already uploaded" in html
    assert Drawing.objects.count() == 2
    assert Drawing.objects.get(original_name=good.name).uploaded_by.groups.filter(name="Manager").exists()
    assert len(render_queue_ids()) == 2


def test_admin_upload_too_large_is_rejected_with_the_limit(client, corpus, roles, settings):
    settings.UPLOAD_MAX_BYTES = 2048
    client.force_login(make_user("Manager"))
    path = corpus / "drawings" / "JR_814059.pdf"
    response = client.post(
        reverse("admin:curation_drawing_upload"),
        {"files": [SimpleUploadedFile(path.name, path.read_bytes(), "application/pdf")]},
    )
    assert f"too large: {path.stat().st_size / 1024:.1f} KB, the limit is 2.0 KB" in response.content.decode()
    assert Drawing.objects.count() == 0


def test_admin_upload_with_redis_away_says_so_and_keeps_the_files(client, corpus, roles, settings):
    settings.RQ_QUEUES = {name: {**conf, "URL": "redis://127.0.0.1:1/0"} for name, conf in settings.RQ_QUEUES.items()}
    client.force_login(make_user("Manager"))
    files = [corpus / "drawings" / "JR_814059.pdf", corpus / "drawings" / "10113153.pdf"]
    response = client.post(
        reverse("admin:curation_drawing_upload"),
        {"files": [SimpleUploadedFile(p.name, p.read_bytes(), "application/pdf") for p in files]},
        follow=True,
    )
    html = response.content.decode()
    assert "The job queue is unavailable" in html and "will render when it is back" in html
    assert list(Drawing.objects.values_list("status", flat=True)) == ["uploaded", "uploaded"]


def test_reviewer_can_neither_upload_nor_render_again(
    client, corpus, roles, run_worker, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        drawing, _ = ingest(corpus / "drawings" / "10113153.pdf")
    run_worker("render")
    client.force_login(make_user("Reviewer"))
    changelist = reverse("admin:curation_drawing_changelist")
    assert client.get(changelist).status_code == 200  # may look
    response = client.post(changelist, {"action": "render_again", "_selected_action": [drawing.pk]})
    drawing.refresh_from_db()
    assert drawing.status == Drawing.Status.RENDERED and render_queue_ids() == set()
    assert response.status_code in (200, 302, 403)
    path = corpus / "drawings" / "JR_814059.pdf"
    upload = client.post(
        reverse("admin:curation_drawing_upload"),
        {"files": [SimpleUploadedFile(path.name, path.read_bytes(), "application/pdf")]},
    )
    assert upload.status_code == 403 and Drawing.objects.count() == 1

    client.force_login(make_user("Manager"))
    with django_capture_on_commit_callbacks(execute=True):
        client.post(changelist, {"action": "render_again", "_selected_action": [drawing.pk]})
    drawing.refresh_from_db()
    assert drawing.status == Drawing.Status.UPLOADED and render_queue_ids() == {drawing_render_job_id(drawing.pk)}


def test_page_images_are_staff_only_and_shown_large(
    client, corpus, roles, run_worker, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        drawing, _ = ingest(corpus / "bad" / "pdf_header_random_bytes.pdf")
        good, _ = ingest(corpus / "drawings" / "JR_814059.pdf")
    run_worker("render")
    page = good.pages.get()
    url = reverse("admin:curation_page_image", args=[page.pk])
    assert client.get(url).status_code == 302  # anonymous: to the login page, no image

    client.force_login(make_user("Reviewer"))
    response = client.get(url)
    assert response.status_code == 200 and response["Content-Type"] == "image/png"
    assert b"".join(response.streaming_content) == page.image.open("rb").read()
    thumb = client.get(url + "?size=thumb")
    assert (
        thumb["Content-Type"] == "image/jpeg" and max(Image.open(__import__("io").BytesIO(thumb.content)).size) <= 160
    )

    changelist = client.get(reverse("admin:curation_drawing_changelist")).content.decode()
    assert f"{url}?size=thumb" in changelist and "JR 814059" in changelist
    assert "damaged PDF: it cannot be opened" in changelist  # failed drawings show their error
    vector_only = client.get(reverse("admin:curation_drawing_changelist") + "?kind=vector").content.decode()
    assert "JR 814059" in vector_only and "damaged PDF" not in vector_only
    failed_only = client.get(reverse("admin:curation_drawing_changelist") + "?status__exact=failed").content.decode()
    assert "damaged PDF" in failed_only and f"{url}?size=thumb" not in failed_only
    found = client.get(reverse("admin:curation_drawing_changelist") + "?q=814059").content.decode()
    assert "JR 814059" in found and "damaged PDF" not in found
    change = client.get(reverse("admin:curation_drawing_change", args=[good.pk])).content.decode()
    assert f'src="{url}"' in change and "drawing-page-image" in change


def test_import_drawings_command_prints_new_existing_rejected(corpus, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    for name in ("JR_814059.pdf", "10113153.pdf"):
        (folder / name).write_bytes((corpus / "drawings" / name).read_bytes())
    (folder / "photo.pdf").write_bytes((corpus / "bad" / "png_image_renamed.pdf").read_bytes())
    from io import StringIO

    out = StringIO()
    call_command("import_drawings", str(folder), "--sync", stdout=out, stderr=StringIO())
    text = out.getvalue()
    assert "3 files: 2 new, 0 existing, 1 rejected" in text
    assert "not a PDF (looks like PNG)" in text and "JR 814059 (rendered)" in text
    out = StringIO()
    call_command("import_drawings", str(folder / "JR_814059.pdf"), stdout=out, stderr=StringIO())
    assert "1 files: 0 new, 1 existing, 0 rejected" in out.getvalue()
    assert Drawing.objects.filter(status=Drawing.Status.RENDERED).count() == 2


def test_deleting_a_drawing_in_the_admin_removes_its_files(
    client, corpus, run_worker, settings, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        drawing, _ = ingest(corpus / "drawings" / "PDM-280686.pdf")
    run_worker("render")
    files = [Path(drawing.file.path)] + [Path(settings.MEDIA_ROOT) / p.image.name for p in drawing.pages.all()]
    assert len(files) == 4 and all(f.exists() for f in files)
    client.force_login(make_user(superuser=True))
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(reverse("admin:curation_drawing_delete", args=[drawing.pk]), {"post": "yes"})
    assert response.status_code == 302
    assert not Drawing.objects.exists() and not DrawingPage.objects.exists()
    assert not any(f.exists() for f in files)


def test_a_drawing_whose_pdf_vanished_fails_with_a_reason(corpus, run_worker, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        drawing, _ = ingest(corpus / "drawings" / "10113153.pdf")
    Path(drawing.file.path).unlink()
    run_worker("render")
    drawing.refresh_from_db()
    assert drawing.status == Drawing.Status.FAILED
    assert drawing.error == "the PDF file is missing from storage: upload it again"


def test_render_again_with_redis_away_warns_and_the_reconciler_picks_it_up(
    client, corpus, roles, run_worker, settings, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        drawing, _ = ingest(corpus / "drawings" / "10113153.pdf")
    run_worker("render")
    working = settings.RQ_QUEUES
    settings.RQ_QUEUES = {name: {**conf, "URL": "redis://127.0.0.1:1/0"} for name, conf in working.items()}
    client.force_login(make_user("Manager"))
    response = client.post(
        reverse("admin:curation_drawing_changelist"),
        {"action": "render_again", "_selected_action": [drawing.pk]},
        follow=True,
    )
    assert "The job queue is unavailable" in response.content.decode()
    drawing.refresh_from_db()
    assert drawing.status == Drawing.Status.UPLOADED and drawing.pages.count() == 1  # kept, waiting

    settings.RQ_QUEUES = working
    with django_capture_on_commit_callbacks(execute=True):
        assert drawings_reconcile() == 1
    run_worker("render")
    drawing.refresh_from_db()
    assert drawing.status == Drawing.Status.RENDERED and drawing.pages.count() == 1


def test_admin_upload_with_an_empty_file_stores_the_good_ones_and_names_each_refused_one(
    client, corpus, roles, django_capture_on_commit_callbacks
):
    # Seen: one empty file in a multi-file upload rejected the whole batch with a generic message.
    client.force_login(make_user("Manager"))
    good = [corpus / "drawings" / "JR_814059.pdf", corpus / "drawings" / "10113153.pdf"]
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            reverse("admin:curation_drawing_upload"),
            {
                "files": [
                    SimpleUploadedFile(good[0].name, good[0].read_bytes(), "application/pdf"),
                    SimpleUploadedFile("empty.pdf", b"", "application/pdf"),
                    SimpleUploadedFile(good[1].name, good[1].read_bytes(), "application/pdf"),
                    SimpleUploadedFile(
                        "photo.pdf", (corpus / "bad" / "png_image_renamed.pdf").read_bytes(), "application/pdf"
                    ),
                ]
            },
        )
    assert response.status_code == 200
    messages = [str(m) for m in response.context["messages"]]
    assert "2 new, 0 already uploaded, 2 rejected." in messages
    assert "empty.pdf was not stored: empty file: 0 bytes." in messages
    assert "photo.pdf was not stored: not a PDF (looks like PNG)." in messages
    rows = response.content.decode().split('id="upload-results"', 1)[1]
    assert "empty.pdf" in rows and "empty file: 0 bytes" in rows
    assert sorted(Drawing.objects.values_list("original_name", flat=True)) == sorted(p.name for p in good)
    assert len(render_queue_ids()) == 2  # the good ones are queued for render


def test_admin_upload_of_only_an_empty_file_names_it_and_stores_nothing(client, roles):
    client.force_login(make_user("Manager"))
    response = client.post(
        reverse("admin:curation_drawing_upload"), {"files": [SimpleUploadedFile("blank.pdf", b"", "application/pdf")]}
    )
    assert response.status_code == 200
    assert "blank.pdf was not stored: empty file: 0 bytes." in [str(m) for m in response.context["messages"]]
    assert not Drawing.objects.exists()
    nothing = client.post(reverse("admin:curation_drawing_upload"), {})
    assert "This field is required." in nothing.content.decode()


def test_import_drawings_command_judges_an_empty_file_on_its_own(corpus, tmp_path):
    from io import StringIO

    folder = tmp_path / "batch"
    folder.mkdir()
    (folder / "JR_814059.pdf").write_bytes((corpus / "drawings" / "JR_814059.pdf").read_bytes())
    (folder / "empty.pdf").write_bytes(b"")
    out = StringIO()
    call_command("import_drawings", str(folder), stdout=out, stderr=StringIO())
    text = out.getvalue()
    assert "2 files: 1 new, 0 existing, 1 rejected" in text
    assert f"rejected  {folder / 'empty.pdf'}: empty file: 0 bytes" in text
    assert list(Drawing.objects.values_list("original_name", flat=True)) == ["JR_814059.pdf"]


# --- real-world PDFs ------------------------------------------------------------------------------


def test_a_pdf_whose_warnings_quote_raw_bytes_renders_and_its_warnings_are_kept(
    run_worker, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        drawing, _ = drawing_ingest(content=pdf_with_raw_bytes_in_warnings(), original_name="raw.pdf")
    run_worker("render")
    drawing.refresh_from_db()
    assert drawing.status == Drawing.Status.RENDERED, drawing.error
    assert drawing.part_number == "RAW-0042" and drawing.pages.count() == 1
    assert "cannot find ColorSpace resource 'CS\\xe3'" in drawing.warnings and drawing.warning_count == 6


def test_import_sync_isolates_each_file_and_leaves_none_waiting(corpus, tmp_path, monkeypatch):
    from io import StringIO

    from curation import rendering

    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "a_raw_bytes.pdf").write_bytes(pdf_with_raw_bytes_in_warnings())
    (folder / "b_crashes.pdf").write_bytes((corpus / "drawings" / "10113153.pdf").read_bytes())
    (folder / "c_pages.pdf").write_bytes(pdf_with_pages("drawing", "blank", "tiny"))
    # A name written on a Latin-1 system: not UTF-8, so Python hands it over with a lone surrogate.
    (folder / os.fsdecode(b"d_Zeichnung_\xe9.pdf")).write_bytes((corpus / "drawings" / "JR_814059.pdf").read_bytes())
    crashing = hashlib.sha256((folder / "b_crashes.pdf").read_bytes()).hexdigest()[:16]
    real_render = rendering.render_isolated

    def render_or_crash(path, *, stem, **kwargs):
        if stem == crashing:
            raise RuntimeError("disk full")
        return real_render(path, stem=stem, **kwargs)

    monkeypatch.setattr(rendering, "render_isolated", render_or_crash)
    out = StringIO()
    call_command("import_drawings", str(folder), "--sync", stdout=out, stderr=StringIO())
    lines = out.getvalue().splitlines()
    assert len(lines) == 5 and lines[-1] == "4 files: 4 new, 0 existing, 0 rejected"
    assert lines[0].endswith("RAW-0042 (rendered)")
    assert lines[1].endswith("(failed: rendering stopped: RuntimeError: disk full)")
    assert lines[2].endswith(
        "TB-4711 (rendered; page 2 is blank (all white after rendering): kept, flagged; page 3 "
        "is too small to hold a drawing (1 × 1 pt; the minimum is 72 pt = 1 in a side): left out)"
    )
    assert "d_Zeichnung_\\xe9.pdf" in lines[3] and lines[3].endswith("JR 814059 (rendered)")
    assert not Drawing.objects.filter(status__in=[Drawing.Status.UPLOADED, Drawing.Status.RENDERING]).exists()
    assert Drawing.objects.get(part_number="JR 814059").original_name == "d_Zeichnung_\\xe9.pdf"


def test_admin_shows_page_problems_and_why_a_drawing_failed(
    client, corpus, roles, run_worker, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        some, _ = drawing_ingest(content=pdf_with_pages("blank", "drawing", "tiny"), original_name="some.pdf")
        none, _ = drawing_ingest(content=pdf_with_pages("tiny"), original_name="tiny.pdf")
    run_worker("render")
    some.refresh_from_db()
    none.refresh_from_db()
    assert some.status == Drawing.Status.RENDERED and [p.number for p in some.pages.all()] == [1, 2]
    assert some.page_count == 2 and some.part_number == "TB-4711"
    too_small = "too small to hold a drawing (1 × 1 pt; the minimum is 72 pt = 1 in a side): left out"
    assert none.status == Drawing.Status.FAILED and none.error == f"the page is {too_small}"
    assert none.pages.count() == 0

    client.force_login(make_user("Reviewer"))
    problems = f"page 1 is blank (all white after rendering): kept, flagged; page 3 is {too_small}"
    changelist = client.get(reverse("admin:curation_drawing_changelist")).content.decode()
    assert problems in changelist
    assert f"the page is {too_small}" in changelist
    change = client.get(reverse("admin:curation_drawing_change", args=[some.pk])).content.decode()
    assert "Page problems" in change and problems in change


def test_a_file_that_vanished_before_it_was_read_is_reported_and_the_others_go_on(corpus, tmp_path):
    from curation.services.drawing_uploads import drawings_ingest_many

    good = corpus / "drawings" / "JR_814059.pdf"
    outcomes, _ = drawings_ingest_many(files=[("gone.pdf", tmp_path / "gone.pdf"), (good.name, good)], enqueue=False)
    assert [(o.name, o.verdict) for o in outcomes] == [("gone.pdf", "rejected"), (good.name, "new")]
    assert outcomes[0].reason == "could not read or store the file: No such file or directory"
    assert Drawing.objects.get().original_name == good.name
