"""Review of examples: transitions, reasons, target edits against the schema, audit rows, bulk actions with
their confirmation page, permission refusals, and the changelist's filters and counts."""

import json

import pytest
from django.contrib.auth.models import Permission
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from curation.models import Example, ExampleChange
from curation.services.review import (
    ReasonRequired,
    ReviewConflict,
    TargetInvalid,
    TransitionNotAllowed,
    example_approve,
    example_mark_needs_changes,
    example_reject,
    example_target_update,
    examples_approve,
)
from tests.factories import make_drawing, make_example, make_ground_truth, make_task, make_user, technology_target

pytestmark = pytest.mark.django_db

CHANGELIST = "/admin/curation/example/"


def review_url(example):
    return reverse("admin:curation_example_review", args=[example.pk])


def fresh(example):
    return Example.objects.get(pk=example.pk)


def messages_of(response):
    return [str(m) for m in response.context["messages"]] if response.context else []


@pytest.fixture
def reviewer(roles):
    return make_user("Reviewer")


@pytest.fixture
def reviewer_client(client, reviewer):
    client.force_login(reviewer)
    return client


# --- services: transitions and audit ------------------------------------------------------------------


def test_approve_sets_reviewer_and_records_who_before_after(reviewer):
    example = make_example()
    example_approve(example=example, user=reviewer, note="matches the drawing")

    example = fresh(example)
    assert example.status == Example.Status.APPROVED
    assert example.reviewer == reviewer and example.reviewed_at is not None
    change = example.changes.get()
    assert (change.user, change.field, change.before, change.after) == (reviewer, "status", "pending", "approved")
    assert change.note == "matches the drawing" and change.at is not None


@pytest.mark.parametrize("reason", ["", "   "])
def test_reject_needs_a_reason_and_changes_nothing_without_one(reviewer, reason):
    example = make_example()
    with pytest.raises(ReasonRequired):
        example_reject(example=example, user=reviewer, reason=reason)
    assert fresh(example).status == Example.Status.PENDING
    assert not ExampleChange.objects.exists()


def test_needs_changes_needs_a_note(reviewer):
    example = make_example()
    with pytest.raises(ReasonRequired):
        example_mark_needs_changes(example=example, user=reviewer, note="")
    example_mark_needs_changes(example=example, user=reviewer, note="setup time too low")
    assert fresh(example).status == Example.Status.NEEDS_CHANGES
    assert fresh(example).review_note == "setup time too low"


def test_transitions_any_decision_to_another_but_never_the_same_twice(reviewer):
    example = make_example()
    example_reject(example=example, user=reviewer, reason="wrong material")
    assert fresh(example).rejection_reason == "wrong material"

    # A reviewer may change their mind; the approval clears the stale reason, the history keeps it.
    example_approve(example=example, user=reviewer)
    assert fresh(example).status == Example.Status.APPROVED
    assert fresh(example).rejection_reason == ""

    with pytest.raises(TransitionNotAllowed):
        example_approve(example=example, user=reviewer)
    history = list(fresh(example).changes.order_by("id").values_list("before", "after", "note"))
    assert history == [("pending", "rejected", "wrong material"), ("rejected", "approved", "")]


def test_a_decision_on_a_stale_screen_is_refused_not_lost(reviewer):
    example = make_example()
    other = make_user("Reviewer")
    example_reject(example=example, user=other, reason="scan unreadable")
    # The first reviewer's screen still shows "pending".
    with pytest.raises(ReviewConflict):
        example_approve(example=example, user=reviewer, expected_status=Example.Status.PENDING)
    assert fresh(example).status == Example.Status.REJECTED
    assert fresh(example).reviewer == other


def test_invalid_target_edit_is_refused_with_the_schema_error_and_nothing_saved(reviewer):
    example = make_example()
    before = example.target
    bad = technology_target(example.group_key)
    bad["operations"][0]["machine_time_min_per_piece"] = -3

    with pytest.raises(TargetInvalid) as error:
        example_target_update(example=example, user=reviewer, target_text=json.dumps(bad))
    assert "$.operations[0].machine_time_min_per_piece" in str(error.value)
    with pytest.raises(TargetInvalid, match="not valid JSON"):
        example_target_update(example=example, user=reviewer, target_text="{material: C45")

    assert fresh(example).target == before
    assert not ExampleChange.objects.exists()


def test_target_edit_is_saved_audited_and_sends_an_approved_example_back_to_pending(reviewer):
    example = make_example(status=Example.Status.APPROVED)
    before = example.target
    corrected = technology_target(example.group_key, material="42CrMo4", minutes=9.0)

    example_target_update(
        example=example, user=reviewer, target_text=json.dumps(corrected, indent=2), expected_target=before
    )

    example = fresh(example)
    assert json.loads(example.target) == corrected
    assert example.status == Example.Status.PENDING
    changes = {c.field: c for c in example.changes.all()}
    assert changes["target"].before == before and json.loads(changes["target"].after) == corrected
    assert (changes["status"].before, changes["status"].after) == ("approved", "pending")


def test_target_edit_against_a_target_changed_meanwhile_is_refused(reviewer):
    example = make_example()
    seen = example.target
    example_target_update(
        example=example,
        user=make_user("Reviewer"),
        target_text=json.dumps(technology_target(example.group_key, minutes=20)),
    )
    with pytest.raises(ReviewConflict):
        example_target_update(
            example=example,
            user=reviewer,
            expected_target=seen,
            target_text=json.dumps(technology_target(example.group_key, minutes=5)),
        )
    assert json.loads(fresh(example).target)["operations"][0]["machine_time_min_per_piece"] == 20


def _support_line(question: str, answer: str) -> str:
    return json.dumps(
        {
            "task": "support_reply",
            "messages": [
                {"role": "system", "content": "You answer machine shop support questions."},
                {"role": "user", "content": question},
                {"role": "assistant", "content": answer},
            ],
        }
    )


def test_an_edited_target_is_found_as_a_duplicate_by_the_next_import(reviewer):
    from curation.services.example_import import examples_import_jsonl

    examples_import_jsonl(text=_support_line("The chuck slips.", "Check the jaws."))
    example = Example.objects.get()
    example_target_update(example=example, user=reviewer, target_text="Re-tighten the chuck.")

    # The same chat with the reviewer's answer is the example as it is now: counted as a duplicate, not added.
    report = examples_import_jsonl(text=_support_line("The chuck slips.", "Re-tighten the chuck."))
    assert (report.created, report.duplicates) == (0, 1)
    assert Example.objects.count() == 1
    # The old answer is no longer stored: importing it again adds it as a new example.
    assert examples_import_jsonl(text=_support_line("The chuck slips.", "Check the jaws.")).created == 1


def test_an_edit_that_makes_the_example_identical_to_another_is_refused_naming_it(reviewer_client, reviewer):
    from curation.services.review import DuplicateExample

    task, drawing = make_task(), make_drawing(part_number="DUP-1")
    kept = make_example(task=task, drawing=drawing, target=technology_target("DUP-1", minutes=12.5))
    other = make_example(task=task, drawing=drawing, target=technology_target("DUP-1", minutes=14.0))
    # The first is corrected by a person; the second is then edited to say the same: the same content twice.
    example_target_update(example=kept, user=reviewer, target_text=json.dumps(technology_target("DUP-1", minutes=11.0)))
    same = json.dumps(technology_target("DUP-1", minutes=11.0))
    with pytest.raises(DuplicateExample, match=f"identical to example #{kept.pk}"):
        example_target_update(example=other, user=reviewer, target_text=same)
    assert json.loads(fresh(other).target)["operations"][0]["machine_time_min_per_piece"] == 14.0

    # On the review screen: the reviewer reads which example it duplicates, the text stays in the editor.
    response = reviewer_client.post(
        review_url(other), {"decision": "edit", "target": same, "expected_target": fresh(other).target}
    )
    assert response.status_code == 200
    assert any(f"identical to example #{kept.pk}" in m for m in messages_of(response))
    assert not other.changes.exists()


def test_bulk_approve_counts_changed_and_skipped(reviewer):
    task = make_task()
    pending = [make_example(task=task) for _ in range(3)]
    done = make_example(task=task, status=Example.Status.APPROVED)

    result = examples_approve(examples=Example.objects.filter(pk__in=[e.pk for e in pending + [done]]), user=reviewer)

    assert (result.changed, result.skipped) == (3, 1)
    assert Example.objects.filter(status=Example.Status.APPROVED).count() == 4
    assert ExampleChange.objects.count() == 3


# --- the review screen --------------------------------------------------------------------------------


def test_review_screen_shows_pages_target_ground_truth_history_and_legend(reviewer_client, reviewer):
    example = make_example(tags={"industry": "automotive", "machine": ["NZX 2000"], "material": "C45"})
    make_ground_truth(example.group_key, high_cv=True)
    example_reject(example=example, user=reviewer, reason="first look: wrong material")

    response = reviewer_client.get(review_url(example))

    assert response.status_code == 200
    page = example.drawing.pages.get()
    html = response.content.decode()
    # The full-resolution page through the rendering side's staff-only image view, under its content hash.
    assert f'src="{reverse("admin:curation_page_image", args=[page.pk])}?v={page.sha256[:16]}"' in html
    assert 'id="review-target-material">C45<' in html
    # Breadcrumbs lead back to the list and to the example's own page.
    assert f'href="{reverse("admin:curation_example_changelist")}"' in html
    assert f'href="{reverse("admin:curation_example_change", args=[example.pk])}">#{example.pk}</a>' in html
    assert 'id="review-ground-truth"' in html and "High variation" in html
    assert "first look: wrong material" in html  # history row and rejection reason
    assert 'id="review-legend"' in html and "<kbd>a</kbd>" in html
    # Target 12.5 against ground truth 12.0 -> +4.2 %.
    assert "+4.2 %" in html and "-3.8 %" in html


def test_approve_on_the_review_screen_moves_on_to_the_next_pending(reviewer_client, reviewer):
    task = make_task()
    first, second = make_example(task=task), make_example(task=task)

    response = reviewer_client.post(review_url(first), {"decision": "approve", "expected_status": "pending"})

    assert response.status_code == 302 and response["Location"] == review_url(second)
    assert fresh(first).status == Example.Status.APPROVED and fresh(first).reviewer == reviewer


def test_reject_on_the_review_screen_without_a_reason_shows_an_error(reviewer_client):
    example = make_example()
    response = reviewer_client.post(review_url(example), {"decision": "reject", "reason": " "}, follow=True)
    assert response.status_code == 200
    assert "A rejection needs a reason." in messages_of(response)
    assert fresh(example).status == Example.Status.PENDING


def test_invalid_target_edit_on_the_review_screen_keeps_the_text_and_saves_nothing(reviewer_client):
    example = make_example()
    before = example.target
    broken = before.replace('"turning"', '"grinding"')

    response = reviewer_client.post(
        review_url(example), {"decision": "edit", "target": broken, "expected_target": before}
    )

    assert response.status_code == 200
    (message,) = messages_of(response)
    assert message.startswith("Target not saved: $.operations[0].operation") and "grinding" in message
    assert "grinding" in response.content.decode()  # the reviewer's text is still in the editor
    assert fresh(example).target == before
    assert not ExampleChange.objects.exists()


def test_change_page_shows_the_history_and_links_to_the_review(reviewer_client, reviewer):
    example = make_example()
    example_mark_needs_changes(example=example, user=reviewer, note="check the thread length")
    response = reviewer_client.get(reverse("admin:curation_example_change", args=[example.pk]))
    html = response.content.decode()
    assert response.status_code == 200
    assert "check the thread length" in html and reviewer.username in html
    assert review_url(example) in html


# --- permissions --------------------------------------------------------------------------------------


@pytest.fixture
def looker(db):
    """Staff who may look at and change examples (e.g. tags) but not review them."""
    user = make_user(None)
    user.user_permissions.add(
        *Permission.objects.filter(content_type__app_label="curation", codename__in=["view_example", "change_example"])
    )
    return user


def test_staff_without_review_permission_cannot_approve_by_posting(client, looker):
    example = make_example()
    client.force_login(looker)

    assert client.get(review_url(example)).status_code == 200  # may look
    assert client.post(review_url(example), {"decision": "approve"}).status_code == 403

    # The changelist neither offers the action nor runs it when it is posted by hand.
    response = client.post(
        CHANGELIST, {"action": "approve_selected", "_selected_action": [example.pk], "index": 0}, follow=True
    )
    assert response.status_code == 200 and 'value="approve_selected"' not in response.content.decode()
    assert fresh(example).status == Example.Status.PENDING
    assert not ExampleChange.objects.exists()


def test_reviewer_is_refused_the_manager_only_download_action(reviewer_client, reviewer, roles):
    example = make_example()
    assert not reviewer.has_perm("curation.build_dataset") and not reviewer.has_perm("finetune.launch_run")

    response = reviewer_client.post(
        CHANGELIST, {"action": "download_jsonl", "_selected_action": [example.pk], "index": 0}, follow=True
    )
    assert "No action selected." in messages_of(response)
    assert "attachment" not in response.get("Content-Disposition", "")

    manager_client = type(reviewer_client)()
    manager_client.force_login(make_user("Manager"))
    response = manager_client.post(
        CHANGELIST, {"action": "download_jsonl", "_selected_action": [example.pk], "index": 0}
    )
    assert response["Content-Disposition"] == 'attachment; filename="examples.jsonl"'
    assert json.loads(response.content.decode().splitlines()[0])["id"] == example.pk


def test_staff_without_view_permission_gets_403_on_the_review_screen(client):
    example = make_example()
    client.force_login(make_user(None))
    assert client.get(review_url(example)).status_code == 403


# --- bulk actions in the changelist -------------------------------------------------------------------


def test_bulk_approve_from_the_changelist(reviewer_client):
    task = make_task()
    chosen = [make_example(task=task), make_example(task=task)]
    other = make_example(task=task)

    response = reviewer_client.post(
        CHANGELIST, {"action": "approve_selected", "index": 0, "_selected_action": [e.pk for e in chosen]}, follow=True
    )

    assert any(m.startswith("Approved 2 example(s)") for m in messages_of(response))
    assert [fresh(e).status for e in chosen] == ["approved", "approved"]
    assert fresh(other).status == "pending"


def test_bulk_reject_asks_for_a_reason_on_a_confirmation_page_first(reviewer_client):
    task = make_task()
    chosen = [make_example(task=task), make_example(task=task)]
    ids = [e.pk for e in chosen]

    first = reviewer_client.post(CHANGELIST, {"action": "reject_selected", "index": 0, "_selected_action": ids})
    assert first.status_code == 200
    html = first.content.decode()
    assert 'name="reason"' in html and 'name="post" value="yes"' in html and "Reject <strong>2</strong>" in html
    assert all(fresh(e).status == "pending" for e in chosen)  # nothing happens on the first POST

    # The confirmation posts the ids again (no "index"), like delete_selected's.
    no_reason = reviewer_client.post(
        CHANGELIST, {"action": "reject_selected", "post": "yes", "reason": "", "_selected_action": ids}
    )
    assert no_reason.status_code == 200 and "A rejection needs a reason." in no_reason.content.decode()
    assert all(fresh(e).status == "pending" for e in chosen)

    done = reviewer_client.post(
        CHANGELIST,
        {"action": "reject_selected", "post": "yes", "reason": "duplicate scans", "_selected_action": ids},
        follow=True,
    )
    assert any(m.startswith("Rejected 2 example(s)") for m in messages_of(done))
    assert [(fresh(e).status, fresh(e).rejection_reason) for e in chosen] == [("rejected", "duplicate scans")] * 2
    assert ExampleChange.objects.filter(after="rejected", note="duplicate scans").count() == 2


# --- changelist: filters, search, counts --------------------------------------------------------------


def _ids(response):
    return {row.pk for row in response.context["cl"].result_list}


def test_changelist_filters_by_tags_ranges_reviewer_and_near_duplicate(reviewer_client, reviewer):
    task = make_task()
    a = make_example(
        task=task,
        tags={"industry": "automotive", "machine": ["NZX 2000", "DMU 50"], "material": "C45"},
        confidence=0.9,
        quality_score=0.3,
    )
    b = make_example(
        task=task,
        tags={"industry": "medical", "machine": ["DMU 50 evo"], "material": "1.4301"},
        confidence=0.6,
        quality_score=0.95,
        is_near_duplicate=True,
    )
    c = make_example(task=task, tags={"industry": "medical", "machine": "NZX 2000", "material": "C45"})
    example_approve(example=c, user=reviewer)

    assert _ids(reviewer_client.get(CHANGELIST, {"tag_industry": "medical"})) == {b.pk, c.pk}
    # A list tag and a single-valued one both match; "DMU 50" does not match "DMU 50 evo".
    assert _ids(reviewer_client.get(CHANGELIST, {"tag_machine": "NZX 2000"})) == {a.pk, c.pk}
    assert _ids(reviewer_client.get(CHANGELIST, {"tag_machine": "DMU 50"})) == {a.pk}
    assert _ids(reviewer_client.get(CHANGELIST, {"tag_material": "1.4301"})) == {b.pk}
    assert _ids(reviewer_client.get(CHANGELIST, {"confidence": "high"})) == {a.pk}
    assert _ids(reviewer_client.get(CHANGELIST, {"confidence": "mid"})) == {b.pk}
    assert _ids(reviewer_client.get(CHANGELIST, {"confidence": "none"})) == {c.pk}
    assert _ids(reviewer_client.get(CHANGELIST, {"quality": "high"})) == {b.pk}
    assert _ids(reviewer_client.get(CHANGELIST, {"reviewer__id__exact": reviewer.pk})) == {c.pk}
    assert _ids(reviewer_client.get(CHANGELIST, {"is_near_duplicate__exact": "1"})) == {b.pk}
    assert _ids(reviewer_client.get(CHANGELIST, {"status__exact": "approved"})) == {c.pk}
    assert _ids(reviewer_client.get(CHANGELIST, {"task__id__exact": task.pk, "q": b.group_key})) == {b.pk}

    html = reviewer_client.get(CHANGELIST).content.decode()
    # The tag filter offers each machine once, flattened from the lists.
    assert html.count("tag_machine=NZX+2000") == 1 and "tag_machine=DMU+50+evo" in html


def test_changelist_tag_filter_matches_a_value_with_letters_beyond_ascii(reviewer_client):
    task = make_task()
    listed = make_example(task=task, tags={"machine": ["Drehzentrum Ø 65", "DMU 50"], "material": "Messing"})
    single = make_example(task=task, tags={"machine": "Drehzentrum Ø 65", "material": "Stahl ü"})
    make_example(task=task, tags={"machine": ["Drehzentrum Ø 650"], "material": "C45"})

    assert _ids(reviewer_client.get(CHANGELIST, {"tag_machine": "Drehzentrum Ø 65"})) == {listed.pk, single.pk}
    assert _ids(reviewer_client.get(CHANGELIST, {"tag_material": "Stahl ü"})) == {single.pk}


def test_changelist_shows_counts_per_status(reviewer_client, reviewer):
    task = make_task()
    examples = [make_example(task=task) for _ in range(4)]
    example_approve(example=examples[0], user=reviewer)
    example_reject(example=examples[1], user=reviewer, reason="blurred")

    response = reviewer_client.get(CHANGELIST)
    counts = {link["value"]: link["count"] for link in response.context["status_links"]}
    assert counts == {"pending": 2, "approved": 1, "rejected": 1, "needs_changes": 0}
    html = response.content.decode()
    assert 'data-status="pending">Pending <strong>2</strong>' in html


def test_changelist_and_review_queries_do_not_grow_with_rows(reviewer_client):
    task = make_task()
    drawing = make_example(task=task).drawing
    make_example(task=task, drawing=drawing, group_key="G-x", content_hash="hx")

    def count(url):
        with CaptureQueriesContext(connection) as queries:
            assert reviewer_client.get(url).status_code == 200
        return len(queries)

    example = Example.objects.order_by("pk").first()
    few = (count(CHANGELIST), count(review_url(example)))
    for i in range(12):
        make_example(
            task=task,
            drawing=drawing,
            group_key=f"G-{i}",
            content_hash=f"h{i}",
            tags={"industry": f"ind{i}", "machine": [f"M{i}"], "material": "C45"},
        )
    assert (count(CHANGELIST), count(review_url(example))) == few


def test_next_pending_link_opens_the_first_pending_or_says_none_is_left(reviewer_client, reviewer):
    task = make_task()
    first, second = make_example(task=task), make_example(task=task)
    url = reverse("admin:curation_example_next_pending") + f"?task={task.pk}"
    assert reviewer_client.get(url)["Location"] == review_url(first)
    for example in (first, second):
        example_approve(example=example, user=reviewer)
    response = reviewer_client.get(url, follow=True)
    assert "No pending examples left. Well done." in messages_of(response)


def test_reviewer_posting_the_manager_only_build_examples_action_is_not_served(client, roles):
    task = make_task()
    drawing = make_drawing(part_number="GS-20001")
    make_ground_truth("GS-20001", material="C45")
    reviewer = make_user("Reviewer")
    assert not reviewer.has_perm("curation.build_dataset") and not reviewer.has_perm("finetune.launch_run")

    client.force_login(reviewer)
    response = client.post(
        "/admin/curation/task/", {"action": "build_examples", "_selected_action": [task.pk], "index": 0}, follow=True
    )
    assert response.status_code in (200, 403)
    assert not any("created" in m for m in messages_of(response))
    assert not Example.objects.exists()

    # The same POST from a manager is served: the refusal above is the permission, not a broken request.
    client.force_login(make_user("Manager"))
    served = client.post(
        "/admin/curation/task/", {"action": "build_examples", "_selected_action": [task.pk], "index": 0}, follow=True
    )
    assert any(m.startswith("technology_builder: 1 created") for m in messages_of(served))
    assert Example.objects.filter(drawing=drawing).exists()


def test_change_form_edits_scores_and_tags_but_never_status_or_target(reviewer_client):
    example = make_example()
    target = example.target
    url = reverse("admin:curation_example_change", args=[example.pk])
    response = reviewer_client.post(
        url,
        {
            "quality_score": "0.7",
            "confidence": "0.9",
            "tags": '{"industry": "medical"}',
            "status": "approved",
            "target": "{}",  # not form fields: ignored
        },
    )
    assert response.status_code == 302
    example = fresh(example)
    assert (example.quality_score, example.tags) == (0.7, {"industry": "medical"})
    assert (example.status, example.target) == ("pending", target)
    assert not ExampleChange.objects.exists()


def test_text_task_example_is_reviewed_without_pages_and_its_text_target_edited(reviewer_client):
    example = make_example(task=make_task("support_reply"), target="Thanks, done.")

    response = reviewer_client.get(review_url(example))
    html = response.content.decode()
    assert response.status_code == 200 and "has no drawing pages" in html and "Question " in html

    reviewer_client.post(review_url(example), {"decision": "edit", "target": "", "expected_target": example.target})
    assert fresh(example).target == "Thanks, done."  # empty text is refused by the schema (minLength 1)
    reviewer_client.post(
        review_url(example),
        {"decision": "edit", "target": "Done: the chuck was re-tightened.", "expected_target": example.target},
    )
    assert fresh(example).target == "Done: the chuck was re-tightened."


def test_bulk_reject_of_all_filtered_rows_across_pages(reviewer_client, reviewer):
    task = make_task()
    pending = [make_example(task=task) for _ in range(3)]
    approved = make_example(task=task)
    example_approve(example=approved, user=reviewer)
    url = CHANGELIST + "?status__exact=pending"

    # "Select all 3" on a filtered list posts one visible id plus select_across.
    first = reviewer_client.post(
        url, {"action": "reject_selected", "index": 0, "select_across": "1", "_selected_action": [pending[0].pk]}
    )
    html = first.content.decode()
    assert "Reject <strong>3</strong>" in html and 'name="select_across" value="1"' in html
    assert 'action="/admin/curation/example/?status__exact=pending"' in html

    reviewer_client.post(
        url,
        {
            "action": "reject_selected",
            "post": "yes",
            "reason": "old revision",
            "select_across": "1",
            "_selected_action": [pending[0].pk],
        },
    )
    assert all(fresh(e).status == "rejected" for e in pending)
    assert fresh(approved).status == "approved"


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_reviewers_at_once_the_second_waits_for_the_lock_and_is_refused():
    """Reviewer 1 holds the row while deciding; reviewer 2's approve waits, then sees the rejection."""
    import threading

    from django.db import transaction

    if connection.vendor != "postgresql":
        pytest.skip("row locks (select_for_update) need PostgreSQL; SQLite relies on the conditional update")
    example = make_example()
    first, second = make_user("Reviewer"), make_user("Reviewer")
    locked, outcome = threading.Event(), {}

    def reviewer_one():
        try:
            with transaction.atomic():
                Example.objects.select_for_update().get(pk=example.pk)
                locked.set()
                threading.Event().wait(0.5)  # reviewer 2 arrives meanwhile and has to wait for the lock
                example_reject(example=example, user=first, reason="wrong drawing revision")
        finally:
            connection.close()

    thread = threading.Thread(target=reviewer_one)
    thread.start()
    assert locked.wait(5)
    try:
        example_approve(example=example, user=second, expected_status=Example.Status.PENDING)
    except ReviewConflict as exc:
        outcome["refused"] = str(exc)
    thread.join(10)

    assert "changed meanwhile" in outcome["refused"]
    example = fresh(example)
    assert (example.status, example.reviewer) == ("rejected", first)
    assert list(example.changes.values_list("user_id", "after")) == [(first.pk, "rejected")]


# --- ground truth changed under a reviewed target: keep mine or take the new ---------------------------


def _flagged(reviewer, *, minutes_now=14.0, approve=True):
    """An approved (built) example whose ground truth then moved from 12.5 to `minutes_now` min/pc."""
    from curation.services.examples import GroundTruthSync, example_ground_truth_sync

    example = make_example()
    Example.objects.filter(pk=example.pk).update(ground_truth_basis=example.target)
    if approve:
        example_approve(example=example, user=reviewer)
    new_target = json.dumps(technology_target(example.group_key, minutes=minutes_now))
    assert example_ground_truth_sync(example=example, target_text=new_target) == GroundTruthSync.FLAGGED
    return fresh(example), new_target


def test_review_screen_says_what_changed_and_offers_keep_or_take(reviewer_client, reviewer):
    example, _ = _flagged(reviewer)
    html = reviewer_client.get(review_url(example)).content.decode()
    assert "Ground truth changed: turning on NZX 2000: time was 12.5, now 14 min/pc" in html
    assert 'id="review-keep-target"' in html and 'id="review-take-ground-truth"' in html
    assert example.status == Example.Status.APPROVED  # flagged, not sent back


def test_keep_my_target_clears_the_flag_keeps_the_target_and_is_audited(reviewer_client, reviewer):
    from curation.services.examples import GroundTruthSync, example_ground_truth_sync

    example, new_target = _flagged(reviewer)
    mine = example.target
    response = reviewer_client.post(
        review_url(example), {"decision": "keep_target", "expected_ground_truth_target": new_target}
    )
    assert response.status_code == 302 and response["Location"] == review_url(example)
    example = fresh(example)
    assert example.target == mine and example.status == Example.Status.APPROVED
    assert example.ground_truth_target == ""
    choice = example.changes.filter(field="ground_truth", user=reviewer).get()
    assert choice.note.startswith("Kept the reviewer's target") and choice.after == new_target
    # The same ground truth seen again by a machine path is not flagged a second time.
    assert example_ground_truth_sync(example=example, target_text=new_target) == GroundTruthSync.UNCHANGED
    assert fresh(example).ground_truth_target == "" and fresh(example).target == mine
    html = reviewer_client.get(review_url(example)).content.decode()
    assert 'id="review-keep-target"' not in html and "Kept the reviewer&#x27;s target" in html


def test_take_the_new_ground_truth_replaces_the_target_audited_and_asks_for_approval_again(reviewer_client, reviewer):
    example, new_target = _flagged(reviewer)
    mine = example.target
    response = reviewer_client.post(
        review_url(example), {"decision": "take_ground_truth", "expected_ground_truth_target": new_target}
    )
    assert response.status_code == 302
    example = fresh(example)
    assert example.target == new_target and example.ground_truth_target == ""
    assert example.status == Example.Status.PENDING
    change = example.changes.get(field="target")
    assert (change.before, change.after, change.user) == (mine, new_target, reviewer)
    assert change.note.startswith("Took the new ground truth")
    assert example.changes.filter(field="status", before="approved", after="pending", user=reviewer).exists()


def test_a_choice_against_a_ground_truth_that_moved_again_is_refused(reviewer_client, reviewer):
    from curation.services.examples import example_ground_truth_sync

    example, seen = _flagged(reviewer)
    newer = json.dumps(technology_target(example.group_key, minutes=15.0))
    example_ground_truth_sync(example=example, target_text=newer)
    response = reviewer_client.post(
        review_url(example), {"decision": "take_ground_truth", "expected_ground_truth_target": seen}
    )
    assert response.status_code == 200
    assert any("changed again meanwhile" in m for m in messages_of(response))
    assert fresh(example).ground_truth_target == newer and fresh(example).target != newer


def test_changelist_lists_flagged_examples_under_their_filter(reviewer_client, reviewer):
    flagged, _ = _flagged(reviewer)
    other = make_example()
    html = reviewer_client.get(CHANGELIST + "?ground_truth_changed=yes").content.decode()
    assert review_url(flagged) in html and review_url(other) not in html
    assert "ground truth changed" in reviewer_client.get(CHANGELIST).content.decode()


def test_staff_without_review_permission_cannot_choose(client, looker, reviewer):
    example, new_target = _flagged(reviewer)
    client.force_login(looker)
    response = client.post(
        review_url(example), {"decision": "take_ground_truth", "expected_ground_truth_target": new_target}
    )
    assert response.status_code == 403 and fresh(example).ground_truth_target == new_target
