"""Render progress: the render process reports pages as it goes, the drawing row counts them, and the drawing's
page shows "pages rendered / pages in the PDF" with a bar through its live JSON (static/gestima/live.js)."""

import re

import pytest
from django.urls import reverse

from curation import rendering
from curation.models import Drawing, DatasetVersion
from curation.services.drawing_uploads import drawing_ingest
from tests.curation.pdfs import pdf_with_pages
from tests.factories import make_dataset_version, make_user

pytestmark = pytest.mark.django_db


def _bar_width(html: str, name: str) -> int:
    match = re.search(rf'data-live-bar="{name}" style="display:block;width:(\d+)%', html)
    assert match, f"no {name} bar on the page"
    return int(match.group(1))


def test_the_render_process_reports_each_page_to_the_caller(tmp_path):
    path = tmp_path / "four.pdf"
    path.write_bytes(pdf_with_pages("drawing", "blank", "tiny", "drawing"))
    heard = []
    result = rendering.render_isolated(
        str(path), out_dir=str(tmp_path), limits=rendering.RenderLimits(), progress=lambda *p: heard.append(p)
    )
    # The left-out tiny page counts as done too: the bar reaches the PDF's page count.
    assert heard == [(0, 4), (1, 4), (2, 4), (3, 4), (4, 4)] and result.page_count == 3
    # The same process renders the next drawing without a stale report in the pipe.
    again = rendering.render_isolated(str(path), out_dir=str(tmp_path), limits=rendering.RenderLimits())
    assert again.page_count == 3


def test_the_drawing_counts_its_pages_and_its_page_shows_progress_live(
    client, roles, run_worker, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        drawing, _ = drawing_ingest(content=pdf_with_pages("drawing", "drawing", "drawing"), original_name="three.pdf")
    client.force_login(make_user("Reviewer"))
    live = reverse("admin:curation_drawing_live", args=[drawing.pk])
    change = reverse("admin:curation_drawing_change", args=[drawing.pk])

    state = client.get(live).json()
    assert state == {
        "status": "uploaded",
        "active": True,
        "fields": {"render": "Queued: waiting for a render worker"},
        "bars": {"render": 0},
    }
    page = client.get(change).content.decode()
    assert f'data-live-url="{live}"' in page and "gestima/live.js" in page
    assert "Queued: waiting for a render worker" in page and _bar_width(page, "render") == 0

    # Half-way, as the worker's progress leaves the row: "done / total" and the bar.
    Drawing.objects.filter(pk=drawing.pk).update(status="rendering", page_count=3, pages_done=2)
    state = client.get(live).json()
    assert state["fields"]["render"] == "Rendering: 2 / 3 pages (66%)" and state["bars"]["render"] == 66
    assert _bar_width(client.get(change).content.decode(), "render") == 66

    Drawing.objects.filter(pk=drawing.pk).update(status="uploaded", page_count=None, pages_done=0)
    run_worker("render")
    drawing.refresh_from_db()
    assert (drawing.status, drawing.page_count, drawing.pages_done) == ("rendered", 3, 3)
    state = client.get(live).json()
    assert (
        state["active"] is False and state["fields"]["render"] == "Rendered: 3 pages" and state["bars"]["render"] == 100
    )
    page = client.get(change).content.decode()
    assert "data-live-url" not in page and "gestima/live.js" not in page  # a rendered drawing's page never polls
    assert _bar_width(page, "render") == 100 and page.count("drawing-page-image") == 3


def test_drawing_live_json_refuses_without_view_permission_and_names_a_missing_drawing(client, roles):
    drawing, _ = drawing_ingest(content=pdf_with_pages("drawing"), original_name="one.pdf")
    live = reverse("admin:curation_drawing_live", args=[drawing.pk])
    client.force_login(make_user(None))  # staff, in no group: may not view drawings
    refused = client.get(live)
    assert refused.status_code == 403 and refused.json() == {"error": "You may not view drawings."}
    client.force_login(make_user("Manager"))
    missing = client.get(reverse("admin:curation_drawing_live", args=[999999]))
    assert missing.status_code == 404 and missing.json() == {"error": "Drawing 999999 does not exist."}
    client.logout()
    assert client.get(live).status_code == 302  # signed out: the login page, which live.js reads as "stopped"


def test_the_export_shows_lines_written_of_the_versions_examples_with_a_bar(client, roles):
    version = make_dataset_version(n_train=30, n_validation=10)
    DatasetVersion.objects.filter(pk=version.pk).update(export_status="running", export_progress=10)
    client.force_login(make_user("Manager"))
    live = reverse("admin:curation_datasetversion_live", args=[version.pk])
    state = client.get(live).json()
    assert state["fields"]["export"] == "Running: 10 / 40 lines (25%)" and state["bars"]["export"] == 25
    page = client.get(reverse("admin:curation_datasetversion_change", args=[version.pk])).content.decode()
    assert f'data-live-url="{live}"' in page and _bar_width(page, "export") == 25
    assert '<span data-live-field="export">Running: 10 / 40 lines (25%)</span>' in page

    DatasetVersion.objects.filter(pk=version.pk).update(export_status="done", export_progress=40)
    state = client.get(live).json()
    assert state["active"] is False and state["bars"]["export"] == 100

    client.force_login(make_user(None))
    refused = client.get(live)
    assert refused.status_code == 403 and "error" in refused.json()
