"""Live progress in a real browser: the drawing's page follows its render page by page while a real burst worker
renders (the bar seen between 0 and 100 %, then the pages, then no more polls); a Manager uploads a drawing and
watches it render; a Manager imports a production CSV through the import page's button and reads the result,
the bad line named by its number. Pages poll their live JSON (static/gestima/live.js) only while work runs."""

import re
import threading
import time

import django_rq
import pytest
from django.db import connections
from django.urls import reverse
from rq import SimpleWorker
from rq.timeouts import BaseDeathPenalty

from curation import rendering
from curation.models import Drawing, ProductionImport, ProductionRecord
from curation.services.drawing_uploads import drawing_ingest
from tests.curation.pdfs import pdf_repeated
from tests.e2e.browser import BROWSER_MARKS, login, screenshot
from tests.factories import make_user

pytestmark = BROWSER_MARKS
PASSWORD = "Gestima-pw-2026"
CSV = (
    "part_number,order_id,machine,operation,pieces,machine_time_min_per_piece,setup_min,recorded_at\n"
    "R-1,O1,DMU 50,milling,10,1.5,20,\n"
    "R-2,O2,DMU 50,milling,ten,1.5,20,\n"
    "R-3,O3,DMU 50,turning,4,2.0,15,2024-05-01\n"
)


@pytest.fixture(autouse=True)
def _fast_polling(settings):
    settings.ADMIN_LIVE_POLL_SECONDS = 0.2


@pytest.fixture
def browser_page(browser_page):
    """Live polls answered only while this thread waits in Playwright (see test_buttons_browser.py): a worker this
    thread runs never writes beside a poll on the shared in-memory SQLite connection."""
    browser_page.route("**/live.json", lambda route: route.fulfill(response=route.fetch()))
    yield browser_page
    # The render process is forked from this process while Playwright's driver pipe is open, and a fork keeps
    # every descriptor: stopped first, or the driver never reads the end of its pipe and closing it hangs.
    rendering.render_process_stop()


class _NoTimeout(BaseDeathPenalty):
    """No job timeout in the test's worker thread. RQ's SIGALRM one belongs to the main thread, and its timer-thread
    one (TimerDeathPenalty) patches JobTimeoutException's __init__ for the whole process, so every later timeout
    in this test session would read "(300 seconds)" whatever its own limit was."""

    def setup_death_penalty(self):
        pass

    def cancel_death_penalty(self):
        pass


class _ThreadWorker(SimpleWorker):
    """A burst worker that can run beside the test in a thread: no signal handlers (they belong to the main
    thread) and no job timeout (above); the jobs here are short and the test waits with its own bounds."""

    death_penalty_class = _NoTimeout

    def _install_signal_handlers(self):
        pass


def _burst_in_thread(queue: str) -> threading.Thread:
    def work():
        try:
            django_rq.get_worker(queue, worker_class=_ThreadWorker).work(burst=True, with_scheduler=False)
        finally:
            connections.close_all()  # this thread's own connections (PostgreSQL would keep the test database busy)

    thread = threading.Thread(target=work, name=f"burst-{queue}")
    thread.start()
    return thread


def _live_requests(page) -> list[str]:
    seen = []
    page.on("request", lambda request: seen.append(request.url) if "/live.json" in request.url else None)
    return seen


def _assert_polling_stopped(page, seen):
    before = len(seen)
    page.wait_for_timeout(1000)  # five poll intervals
    assert len(seen) == before, "a page whose work is over keeps asking"
    assert page.locator("[data-live-url]").count() == 0


def _render_reading(page):
    """What the drawing's page shows now: the progress text and the bar's width in %, read in one go (a poll
    may land between two reads); None while the page reloads."""
    from playwright.sync_api import Error

    try:
        reading = page.evaluate(
            """() => {
                const text = document.querySelector("[data-live-field=render]");
                const bar = document.querySelector("[data-live-bar=render]");
                return text && bar ? [text.textContent, bar.style.width] : null;
            }"""
        )
    except Error:  # the page is navigating (it reloads itself when the status changes)
        return None
    return None if reading is None else (reading[0], float(reading[1].rstrip("%")))


def test_the_drawing_page_follows_a_long_render_page_by_page_and_stops_asking_at_the_end(
    live_server, transactional_db, browser_page, corpus, expect, roles
):
    page = browser_page
    # 24 pages (the scanned two-sheet bracket twelve times): about 0.15 s a page, a few seconds in all.
    drawing, _ = drawing_ingest(
        content=pdf_repeated(corpus / "drawings" / "10119939.pdf", 12), original_name="bracket-x12.pdf"
    )
    make_user("Reviewer", username="rita", password=PASSWORD)
    change = reverse("admin:curation_drawing_change", args=[drawing.pk])
    login(page, live_server, "rita", PASSWORD, next_url=change)
    expect(page.locator("[data-live-field=render]")).to_have_text("Queued: waiting for a render worker")
    expect(page.locator("[data-live-url]")).to_have_attribute("data-live-state", "polling")
    seen = _live_requests(page)

    worker = _burst_in_thread("render")
    readings = []
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        page.wait_for_timeout(100)  # the routed polls are answered while this thread waits here
        reading = _render_reading(page)
        if reading is not None:
            readings.append(reading)
            if reading[0].startswith("Rendered"):
                break
    worker.join(60)
    assert not worker.is_alive()

    between = [(text, width) for text, width in readings if 0 < width < 100]
    assert between, f"the bar was never seen part-way: {readings}"
    for text, width in between:
        done = re.fullmatch(r"Rendering: (\d+) / 24 pages \((\d+)%\)", text)
        assert done and 0 < int(done.group(1)) < 24 and int(done.group(2)) == int(width), (text, width)
    widths = [width for _, width in readings]
    assert widths == sorted(widths), f"the bar went backwards: {readings}"
    assert readings[-1] == ("Rendered: 24 pages", 100.0)
    expect(page.locator("img.drawing-page-image")).to_have_count(24)
    drawing.refresh_from_db()
    assert drawing.status == Drawing.Status.RENDERED
    _assert_polling_stopped(page, seen)
    page.reload()
    _assert_polling_stopped(page, seen)  # a rendered drawing's page never starts asking


def test_a_manager_uploads_a_drawing_and_its_page_shows_the_render_then_the_pages(
    live_server, transactional_db, browser_page, corpus, run_worker, expect, roles
):
    page = browser_page
    make_user("Manager", username="mona", password=PASSWORD)
    login(page, live_server, "mona", PASSWORD, next_url=reverse("admin:curation_drawing_changelist"))
    page.click("#upload-drawings")
    page.set_input_files("input[type=file]", str(corpus / "drawings" / "10119939.pdf"))
    page.click("input[type=submit]")
    expect(page.locator("ul.messagelist")).to_contain_text("1 new, 0 already uploaded, 0 rejected.")
    page.click("tr.upload-new a")
    expect(page.locator("[data-live-field=render]")).to_have_text("Queued: waiting for a render worker")
    expect(page.locator("[data-live-bar=render]")).to_be_attached()
    seen = _live_requests(page)
    screenshot(page, "drawing-render-queued")

    run_worker("render")
    # The page notices by itself (no reload by the test): the status, a full bar and the two page images.
    expect(page.locator("[data-live-field=render]")).to_have_text("Rendered: 2 pages")
    assert page.locator("[data-live-bar=render]").evaluate("bar => bar.style.width") == "100%"
    expect(page.locator("img.drawing-page-image")).to_have_count(2)
    _assert_polling_stopped(page, seen)


def test_a_manager_imports_a_csv_through_the_button_and_reads_the_result_on_the_page(
    live_server, transactional_db, browser_page, run_worker, expect, roles
):
    page = browser_page
    make_user("Manager", username="mona", password=PASSWORD)
    login(page, live_server, "mona", PASSWORD, next_url=reverse("admin:curation_productionrecord_changelist"))
    page.click("text=Import CSV")
    page.set_input_files(
        "input[type=file]", files=[{"name": "shop.csv", "mimeType": "text/csv", "buffer": CSV.encode()}]
    )
    page.click("input[value=Import]")
    page.wait_for_url("**/productionrecord/import/*/")
    imported = ProductionImport.objects.get()
    expect(page.locator("ul.messagelist")).to_contain_text(
        f"shop.csv: import #{imported.pk} queued; the progress shows below.", ignore_case=True
    )
    expect(page.locator("[data-live-field=progress]")).to_contain_text("Queued")
    seen = _live_requests(page)

    run_worker("default")
    expect(page.locator("#import-summary")).to_contain_text("3 rows: 2 created")
    expect(page.locator("#report-invalid")).to_have_text("1")
    expect(page.locator("#invalid-rows tbody tr")).to_have_count(1)
    assert page.locator("#invalid-rows tbody td").all_inner_texts()[:2] == ["3", "R-2"]  # the bad line, by number
    assert "pieces is not a positive integer" in page.inner_text("#invalid-rows")
    assert page.locator("[data-live-bar=progress]").evaluate("bar => bar.style.width") == "100%"
    assert sorted(ProductionRecord.objects.values_list("part_number", flat=True)) == ["R-1", "R-3"]
    screenshot(page, "production-import-done")
    _assert_polling_stopped(page, seen)
