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

    # "a": the decision is stored, then the next pending example is on screen, in the same document.
    page.keyboard.press("a")
    page.wait_for_function(SHOWN, arg=second.pk)
    assert page.url.endswith(f"/admin/curation/example/{second.pk}/review/")
    assert page.evaluate(SAME_DOCUMENT)
    assert f"Example #{second.pk}" in page.inner_text("#review h1") and "SW-1" in page.inner_text(".review-part")
    assert page.inner_text("#review-target-material") == "42CrMo4"
    assert _shown_image_is_of(page, second)
    assert f"Approved example #{first.pk}." in page.inner_text("ul.messagelist")
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


def test_a_refused_decision_is_shown_and_the_screen_stays(live_server, transactional_db, browser_page):
    page = browser_page
    make_user("Reviewer", username="uwe", password="Review-pw-2026")
    first, second = _queue(make_task(), ["C45", "42CrMo4"])
    login(page, live_server, "uwe", "Review-pw-2026")
    _open(page, live_server, first)

    example_approve(example=first, user=make_user("Reviewer", username="vera"))  # decided elsewhere meanwhile
    page.keyboard.press("a")
    page.wait_for_selector("ul.messagelist li.error")
    assert "changed meanwhile" in page.inner_text("ul.messagelist")
    assert page.url.endswith(f"/admin/curation/example/{first.pk}/review/")
    assert page.evaluate(SAME_DOCUMENT)
    assert page.inner_text("#review-target-material") == "C45"
    assert Example.objects.get(pk=first.pk).reviewer.username == "vera"
    assert Example.objects.get(pk=second.pk).status == Example.Status.PENDING

    # The "Next" button moves like its key: swapped in, no page load.
    page.click("#review-next")
    page.wait_for_function(SHOWN, arg=second.pk)
    assert page.url.endswith(f"/admin/curation/example/{second.pk}/review/")
    assert page.evaluate(SAME_DOCUMENT)
    assert page.inner_text("#review-target-material") == "42CrMo4"
