"""The server side of moving between examples without a page load: the review screen's fragment (the next example
fetched in advance) and decisions posted by the screen's script, answered in JSON, under the same permissions."""

import pytest
from django.contrib.auth.models import Permission
from django.urls import reverse

from curation.models import Example
from curation.services.review import example_approve
from tests.factories import make_drawing, make_example, make_task, make_user, technology_target

pytestmark = pytest.mark.django_db

JSON = {"HTTP_ACCEPT": "application/json"}


def review_url(example):
    return reverse("admin:curation_example_review", args=[example.pk])


def fragment_url(example):
    return reverse("admin:curation_example_review_fragment", args=[example.pk])


@pytest.fixture
def reviewer(roles):
    return make_user("Reviewer")


def test_fragment_is_the_review_screen_alone_with_its_example_and_drawing(client, reviewer):
    example = make_example(drawing=make_drawing(part_number="FR-1"), target=technology_target("FR-1", material="S355"))
    page = example.drawing.pages.get()
    client.force_login(reviewer)

    response = client.get(fragment_url(example))

    assert response.status_code == 200
    html = response.content.decode()
    assert '<div id="review"' in html
    assert f'data-url="{review_url(example)}"' in html
    assert 'id="review-target-material">S355<' in html
    assert f'?v={page.sha256[:16]}"' in html  # the drawing under its content hash, so it can be cached
    assert 'id="review-approve-form"' in html and "csrfmiddlewaretoken" in html
    assert "<html" not in html and 'id="header"' not in html  # no admin chrome around it
    assert "no-store" in response["Cache-Control"]  # the script keeps it in memory; the browser never caches it


def test_fragment_needs_the_same_permission_as_the_review_screen(client, roles):
    example = make_example()
    assert client.get(fragment_url(example)).status_code == 302  # anonymous: to the login page
    client.force_login(make_user(None, username="staff-without-view"))
    assert client.get(fragment_url(example)).status_code == 403
    assert client.get(review_url(example)).status_code == 403


def test_json_approve_is_stored_and_answers_the_next_pending(client, reviewer):
    task = make_task()
    first, second, third = make_example(task=task), make_example(task=task), make_example(task=task)
    client.force_login(reviewer)

    response = client.post(review_url(first), {"decision": "approve", "expected_status": "pending"}, **JSON)

    assert response.status_code == 200
    # The next pending after the shown next one is read after this decision: never the example just decided
    # (the shown screen was fetched while it was still pending, and the queue wraps around).
    assert response.json() == {
        "message": f"Approved example #{first.pk}.",
        "example_id": first.pk,
        "next_id": second.pk,
        "next_url": review_url(second),
        "next_pending_url": review_url(third),
    }
    last = client.post(review_url(third), {"decision": "approve", "expected_status": "pending"}, **JSON).json()
    assert (last["next_id"], last["next_pending_url"]) == (second.pk, "")
    stored = Example.objects.get(pk=first.pk)
    assert stored.status == Example.Status.APPROVED and stored.reviewer_id == reviewer.pk
    # The answer carries the message; nothing waits in the session to pop up on a later page.
    assert not list(client.get(review_url(second)).context["messages"])


def test_json_reject_of_the_last_pending_stays_on_it(client, reviewer):
    example = make_example()
    client.force_login(reviewer)

    answer = client.post(
        review_url(example), {"decision": "reject", "reason": "unreadable", "expected_status": "pending"}, **JSON
    ).json()

    assert answer["next_id"] == example.pk and answer["message"].endswith("No pending examples left.")
    assert Example.objects.get(pk=example.pk).rejection_reason == "unreadable"


def test_json_decisions_refused_say_why_and_store_nothing(client, reviewer):
    task = make_task()
    example, _ = make_example(task=task), make_example(task=task)
    client.force_login(reviewer)

    no_reason = client.post(review_url(example), {"decision": "reject", "expected_status": "pending"}, **JSON)
    assert no_reason.status_code == 400 and "reason" in no_reason.json()["error"].lower()
    unknown = client.post(review_url(example), {"decision": "launch"}, **JSON)
    assert unknown.status_code == 400 and unknown.json() == {"error": "Unknown decision."}

    example_approve(example=example, user=make_user("Reviewer", username="other"))  # someone else, meanwhile
    stale = client.post(
        review_url(example), {"decision": "reject", "reason": "x", "expected_status": "pending"}, **JSON
    )
    assert stale.status_code == 409 and "changed meanwhile" in stale.json()["error"]
    assert Example.objects.get(pk=example.pk).status == Example.Status.APPROVED


def test_json_decision_without_the_review_permission_is_refused(client, roles):
    example = make_example()
    looker = make_user(None, username="viewer-only")
    looker.user_permissions.add(Permission.objects.get(codename="view_example"))
    client.force_login(looker)

    response = client.post(review_url(example), {"decision": "approve", "expected_status": "pending"}, **JSON)

    # Said in words the screen's script shows in its banner (an admin 403 page would be HTML).
    assert response.status_code == 403 and "may not review" in response.json()["error"]
    assert Example.objects.get(pk=example.pk).status == Example.Status.PENDING
