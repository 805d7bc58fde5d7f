"""Moving between examples on the review screen without a page load: the next example was fetched and decoded in
advance and is swapped in place; the URL, the back button and the stored decisions stay right, and a next that
someone else took meanwhile (or a refused decision) falls back to what a page load would show."""

from curation.models import Example
from curation.services.review import example_approve
from tests.e2e.browser import BROWSER_MARKS, login
from tests.factories import make_drawing, make_example, make_task, make_user, technology_target

pytestmark = BROWSER_MARKS

SHOWN = (
    "(id) => { const r = document.getElementById('review'); return r && r.dataset.exampleId === String(id) && "
    "!!r.dataset.shownAt; }"
)
SAME_DOCUMENT = "() => window.__sameDocument === true"


def _queue(task, materials):
    return [
        make_example(
            task=task,
            drawing=make_drawing(part_number=f"SW-{i}"),
            target=technology_target(f"SW-{i}", material=material),
        )
        for i, material in enumerate(materials)
    ]


def _open(page, live_server, example):
    page.goto(f"{live_server.url}/admin/curation/example/{example.pk}/review/")
    page.wait_for_function(SHOWN, arg=example.pk)
    # Gone after any page load: shows whether the next screen came by a swap or by loading a page.
    page.evaluate("window.__sameDocument = true")


def _wait_message(page, text):
    """The server's answer to a decision, shown once it is stored (the screen moved on before it)."""
    page.wait_for_function(
        "(text) => (document.querySelector('ul.messagelist') || {}).innerText?.includes(text)", arg=text
    )


def _banner(page) -> str:
    page.wait_for_selector("#review-unsaved .review-unsaved-item")
    return page.inner_text("#review-unsaved")


def _shown_image_is_of(page, example) -> bool:
    page_pk = example.drawing.pages.get().pk
    return page.evaluate(
        """(pk) => { const i = document.querySelector('#review img.review-page');
        return i.complete && i.naturalWidth > 0 && i.src.includes(`/page/${pk}/image/`); }""",
        page_pk,
    )


def test_approve_and_next_swap_the_next_example_in_and_back_returns(live_server, transactional_db, browser_page):
    page = browser_page
    reviewer = make_user("Reviewer", username="sami", password="Review-pw-2026")
    first, second, third = _queue(make_task(), ["C45", "42CrMo4", "1.4301"])
    login(page, live_server, "sami", "Review-pw-2026")
    _open(page, live_server, first)
    assert page.inner_text("#review-target-material") == "C45"

    # "a": the next pending example is on screen, in the same document; the decision is stored behind it.
    page.keyboard.press("a")
    page.wait_for_function(SHOWN, arg=second.pk)
    assert page.url.endswith(f"/admin/curation/example/{second.pk}/review/")
    assert page.evaluate(SAME_DOCUMENT)
    assert f"Example #{second.pk}" in page.inner_text("#review h1") and "SW-1" in page.inner_text(".review-part")
    assert page.inner_text("#review-target-material") == "42CrMo4"
    assert _shown_image_is_of(page, second)
    _wait_message(page, f"Approved example #{first.pk}.")
    assert page.title().startswith(f"Review example #{second.pk} ")
    approved = Example.objects.get(pk=first.pk)
    assert approved.status == Example.Status.APPROVED and approved.reviewer_id == reviewer.pk
    # The swapped-in screen works as a loaded one: zoom keys, and its forms post for this example.
    page.keyboard.press("1")
    assert page.inner_text("#review-zoom-label") == "100 %"

    # "n": the next example by id, swapped in as well; the old message goes, as on a page load.
    page.keyboard.press("n")
    page.wait_for_function(SHOWN, arg=third.pk)
    assert page.url.endswith(f"/admin/curation/example/{third.pk}/review/")
    assert page.evaluate(SAME_DOCUMENT)
    assert page.inner_text("#review-target-material") == "1.4301"
    assert _shown_image_is_of(page, third)
    assert page.inner_text("#review-zoom-label") != "100 %"  # a new example starts fitted
    assert not page.is_visible("ul.messagelist")
    assert Example.objects.get(pk=second.pk).status == Example.Status.PENDING  # "n" decides nothing

    # The back button walks the examples back, showing them as they are now.
    page.go_back()
    page.wait_for_function(SHOWN, arg=second.pk)
    assert page.url.endswith(f"/admin/curation/example/{second.pk}/review/")
    assert page.inner_text("#review-status") == "Pending"
    page.go_back()
    page.wait_for_function(SHOWN, arg=first.pk)
    assert page.inner_text("#review-status") == "Approved"
    assert page.inner_text("#review-target-material") == "C45"

    # "r", a reason and Enter: stored, then the next pending example (the second) swapped in.
    page.evaluate("window.__sameDocument = true")
    page.wait_for_timeout(300)  # the screens the keys lead to are fetched once the page is shown
    page.keyboard.press("r")
    page.keyboard.type("Wrong material")
    page.keyboard.press("Enter")
    page.wait_for_function(SHOWN, arg=second.pk)
    assert page.evaluate(SAME_DOCUMENT)
    _wait_message(page, f"Rejected example #{first.pk}.")
    rejected = Example.objects.get(pk=first.pk)
    assert rejected.status == Example.Status.REJECTED and rejected.rejection_reason == "Wrong material"


def test_a_next_taken_by_someone_else_meanwhile_loads_the_servers_next(live_server, transactional_db, browser_page):
    page = browser_page
    make_user("Reviewer", username="tina", password="Review-pw-2026")
    other = make_user("Reviewer", username="omar")
    first, second, third = _queue(make_task(), ["C45", "42CrMo4", "1.4301"])
    login(page, live_server, "tina", "Review-pw-2026")
    _open(page, live_server, first)
    page.wait_for_timeout(500)  # the second is fetched and decoded in advance now

    example_approve(example=second, user=other)  # another reviewer takes the second meanwhile
    page.keyboard.press("a")
    page.wait_for_function(SHOWN, arg=third.pk)
    assert page.url.endswith(f"/admin/curation/example/{third.pk}/review/")
    assert not page.evaluate(SAME_DOCUMENT)  # a page load, not the stale prefetched second
    assert page.inner_text("#review-target-material") == "1.4301"
    assert f"Approved example #{first.pk}." in page.inner_text("ul.messagelist")
    assert Example.objects.get(pk=first.pk).reviewer.username == "tina"
    assert Example.objects.get(pk=second.pk).reviewer.username == "omar"


def test_a_decision_refused_meanwhile_is_named_in_a_banner_on_the_next_screen(
    live_server, transactional_db, browser_page
):
    page = browser_page
    make_user("Reviewer", username="uwe", password="Review-pw-2026")
    vera = make_user("Reviewer", username="vera")
    first, second, third = _queue(make_task(), ["C45", "42CrMo4", "1.4301"])
    login(page, live_server, "uwe", "Review-pw-2026")
    _open(page, live_server, first)
    page.wait_for_timeout(500)  # the screens the keys lead to are fetched: the page is idle for the write below

    example_approve(example=first, user=vera)  # decided elsewhere meanwhile
    page.keyboard.press("a")
    # The next example is on screen at once; the refusal arrives behind it, naming the example it was about.
    page.wait_for_function(SHOWN, arg=second.pk)
    assert page.evaluate(SAME_DOCUMENT)
    banner = _banner(page)
    assert f"Not saved: Approving example #{first.pk} failed." in banner and "changed meanwhile" in banner
    assert page.get_attribute("#review-unsaved a", "href").endswith(f"/admin/curation/example/{first.pk}/review/")
    assert page.is_visible(f"text=Retry #{first.pk}")
    assert not page.is_visible("ul.messagelist li.info")  # no "Saving" line left standing
    assert Example.objects.get(pk=first.pk).reviewer.username == "vera"
    assert Example.objects.get(pk=second.pk).status == Example.Status.PENDING

    # Not lost on a page load either: the banner stays until it is retried or dismissed.
    page.reload()
    page.wait_for_function(SHOWN, arg=second.pk)
    assert f"example #{first.pk}" in _banner(page)
    page.click(f"text=Retry #{first.pk}")  # still refused: someone else decided it
    page.wait_for_function("() => !document.querySelector('#review-unsaved button:disabled')")
    assert "changed meanwhile" in _banner(page)
    page.click("#review-unsaved .review-unsaved-dismiss")
    assert not page.is_visible("#review-unsaved")
    page.reload()
    page.wait_for_function(SHOWN, arg=second.pk)
    assert not page.is_visible("#review-unsaved")

    # The "Next" button moves like its key: swapped in, no page load.
    page.evaluate("window.__sameDocument = true")
    page.wait_for_timeout(300)
    page.click("#review-next")
    page.wait_for_function(SHOWN, arg=third.pk)
    assert page.url.endswith(f"/admin/curation/example/{third.pk}/review/")
    assert page.evaluate(SAME_DOCUMENT)
    assert page.inner_text("#review-target-material") == "1.4301"


def test_the_last_pending_decision_refused_stays_on_its_example(live_server, transactional_db, browser_page):
    page = browser_page
    make_user("Reviewer", username="wim", password="Review-pw-2026")
    xena = make_user("Reviewer", username="xena")
    (only,) = _queue(make_task(), ["C45"])
    login(page, live_server, "wim", "Review-pw-2026")
    _open(page, live_server, only)
    page.wait_for_timeout(300)

    example_approve(example=only, user=xena)
    page.keyboard.press("a")  # no other pending example to show: the screen waits for the answer
    page.wait_for_selector("ul.messagelist li.error")
    assert "changed meanwhile" in page.inner_text("ul.messagelist")
    assert page.url.endswith(f"/admin/curation/example/{only.pk}/review/") and page.evaluate(SAME_DOCUMENT)
    assert not page.is_visible("#review-unsaved")  # said on the example itself


def test_approve_shows_the_next_example_before_the_server_answers_and_stores_it(
    live_server, transactional_db, browser_page
):
    page = browser_page
    reviewer = make_user("Reviewer", username="yara", password="Review-pw-2026")
    first, second, third = _queue(make_task(), ["C45", "42CrMo4", "1.4301"])
    login(page, live_server, "yara", "Review-pw-2026")
    _open(page, live_server, first)
    page.wait_for_timeout(500)

    # The decision's POST is held in the browser until the next example is on screen: it cannot have come first.
    held = []
    page.route(f"**/admin/curation/example/{first.pk}/review/", lambda route: held.append(route))
    page.keyboard.press("a")
    page.wait_for_function(SHOWN, arg=second.pk)
    assert page.evaluate(SAME_DOCUMENT) and page.url.endswith(f"/admin/curation/example/{second.pk}/review/")
    assert page.inner_text("#review-target-material") == "42CrMo4"
    assert f"Saving: Approving example #{first.pk}" in page.inner_text("ul.messagelist li.info")
    assert len(held) == 1 and held[0].request.method == "POST"
    assert Example.objects.get(pk=first.pk).status == Example.Status.PENDING
    held[0].continue_()
    page.unroute(f"**/admin/curation/example/{first.pk}/review/")
    _wait_message(page, f"Approved example #{first.pk}.")
    stored = Example.objects.get(pk=first.pk)
    assert stored.status == Example.Status.APPROVED and stored.reviewer_id == reviewer.pk
    assert not page.is_visible("#review-unsaved")
    # The next-pending key of the screen shown leads on to the third (the answer's, read after the decision).
    assert page.get_attribute("#review-next-pending", "href").endswith(f"/{third.pk}/review/")

    # The back button shows the first as it is now: approved. Approving it again is refused on the spot.
    page.go_back()
    page.wait_for_function(SHOWN, arg=first.pk)
    assert page.inner_text("#review-status") == "Approved"
    page.wait_for_timeout(300)
    page.keyboard.press("a")
    page.wait_for_selector("ul.messagelist li.error")
    assert "already approved" in page.inner_text("ul.messagelist")
    assert page.url.endswith(f"/admin/curation/example/{first.pk}/review/")
    assert not page.is_visible("#review-unsaved")


def test_a_failed_post_is_kept_and_a_retry_stores_it(live_server, transactional_db, browser_page):
    from django.contrib.auth.models import Group

    page = browser_page
    reviewer = make_user("Reviewer", username="zeno", password="Review-pw-2026")
    first, second, third = _queue(make_task(), ["C45", "42CrMo4", "1.4301"])
    login(page, live_server, "zeno", "Review-pw-2026")
    _open(page, live_server, first)
    page.wait_for_timeout(500)

    # The network fails under the first decision: the next example is shown, the banner names the first.
    page.route(f"**/admin/curation/example/{first.pk}/review/", lambda route: route.abort())
    page.keyboard.press("a")
    page.wait_for_function(SHOWN, arg=second.pk)
    banner = _banner(page)
    assert f"Approving example #{first.pk} failed." in banner and "could not be reached" in banner
    page.unroute(f"**/admin/curation/example/{first.pk}/review/")
    assert Example.objects.get(pk=first.pk).status == Example.Status.PENDING

    # The review permission is taken away while the screen is open: refused, said the same way beside the first.
    page.wait_for_timeout(500)  # the third is fetched in advance (still allowed then)
    reviewers = Group.objects.get(name="Reviewer")
    reviewer.groups.remove(reviewers)
    page.keyboard.press("a")
    page.wait_for_function(SHOWN, arg=third.pk)
    page.wait_for_function("() => document.querySelectorAll('#review-unsaved .review-unsaved-item').length === 2")
    assert "may not review examples" in page.inner_text(f"#review-unsaved [data-example-id='{second.pk}']")
    assert Example.objects.get(pk=second.pk).status == Example.Status.PENDING
    page.wait_for_timeout(500)  # the third's neighbours are fetched: the page is idle for the write below
    reviewer.groups.add(reviewers)

    # Both retried, with the permission back: stored, the banner gone, the third still on screen.
    page.click(f"text=Retry #{first.pk}")
    _wait_message(page, f"Approved example #{first.pk}.")
    page.click(f"text=Retry #{second.pk}")
    _wait_message(page, f"Approved example #{second.pk}.")
    assert not page.is_visible("#review-unsaved")
    assert page.url.endswith(f"/admin/curation/example/{third.pk}/review/")
    for example in (first, second):
        stored = Example.objects.get(pk=example.pk)
        assert stored.status == Example.Status.APPROVED and stored.reviewer_id == reviewer.pk
