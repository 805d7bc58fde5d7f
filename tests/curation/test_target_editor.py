"""The review screen's form editor of the target: its data (schema, choices from the reference tables), the
server's per-field refusal of an invalid target, the audited save, the history read as field changes, and the
material of a scan entered by a reviewer beside the drawing."""

import json

import pytest
from django.contrib.auth.models import Permission
from django.urls import reverse

from curation.models import Example, ExampleChange, GroundTruth, Machine, MaterialAlias
from tests.factories import make_drawing, make_example, make_ground_truth, make_task, make_user, technology_target

pytestmark = pytest.mark.django_db


def review_url(example):
    return reverse("admin:curation_example_review", args=[example.pk])


def messages_of(response):
    return [str(m) for m in response.context["messages"]]


@pytest.fixture
def reviewer_client(client, roles):
    client.force_login(make_user("Reviewer", username="rita"))
    return client


@pytest.fixture
def looker(db):
    user = make_user(None)
    user.user_permissions.add(
        *Permission.objects.filter(
            content_type__app_label="curation", codename__in=["view_example", "change_example", "view_drawing"]
        )
    )
    return user


def edited(example, **changes):
    target = json.loads(example.target)
    for path, value in changes.items():
        index, field = path.split("__")
        target["operations"][int(index)][field] = value
    return target


def test_editor_offers_machines_from_the_table_and_materials_with_their_aliases(reviewer_client):
    Machine.objects.create(name="NZX 2000", kind="lathe")
    Machine.objects.create(name="DMU 50", kind="mill")
    MaterialAlias.objects.create(written="X5CrNi18-10", norm="1.4301")
    example = make_example(target=technology_target("GS-1"))

    response = reviewer_client.get(review_url(example))
    data = response.context["target_editor"]
    page = response.content.decode()

    assert [c["value"] for c in data["choices"]["machine"]] == ["DMU 50", "NZX 2000"]
    assert {"value": "X5CrNi18-10", "label": "= 1.4301"} in data["choices"]["material"]
    assert data["schema"]["properties"]["operations"]["items"]["properties"]["operation"]["enum"] == [
        "saw",
        "turning",
        "milling",
        "deburring",
    ]
    assert data["value"]["operations"][0]["machine"] == "NZX 2000" and data["errors"] == {}
    # Data through json_script and the script from static: nothing inline under the strict CSP.
    assert 'id="target-editor-data" type="application/json"' in page
    assert "gestima/target_editor.js" in page
    assert "<summary>Advanced: the target as JSON" in page


def test_invalid_target_is_refused_with_a_message_per_field_and_nothing_saved(reviewer_client):
    example = make_example(target=technology_target("GS-2"))
    target = edited(example, **{"0__machine_time_min_per_piece": -3, "1__operation": "grinding"})
    target["material"] = ""

    response = reviewer_client.post(
        review_url(example), {"decision": "edit", "target": json.dumps(target), "expected_target": example.target}
    )

    assert response.status_code == 200
    errors = response.context["target_editor"]["errors"]
    assert set(errors) == {"$.operations[0].machine_time_min_per_piece", "$.operations[1].operation", "$.material"}
    assert "-3 is less than the minimum of 0" in errors["$.operations[0].machine_time_min_per_piece"]
    page = response.content.decode()
    assert "<code>$.operations[0].machine_time_min_per_piece</code>" in page
    # The refused target comes back to the fields, so the reviewer corrects it instead of typing it again.
    assert response.context["target_editor"]["value"]["operations"][0]["machine_time_min_per_piece"] == -3
    assert any(m.startswith("Target not saved:") for m in messages_of(response))
    assert Example.objects.get(pk=example.pk).target == example.target
    assert not ExampleChange.objects.exists()


def test_raw_text_that_is_not_json_is_refused_and_shown_in_the_open_raw_editor(reviewer_client):
    example = make_example(target=technology_target("GS-3"))
    response = reviewer_client.post(
        review_url(example), {"decision": "edit", "target": '{"material": ', "expected_target": example.target}
    )
    assert "not valid JSON" in response.context["target_editor"]["errors"]["$"]
    assert '<details id="review-edit" open>' in response.content.decode()
    assert Example.objects.get(pk=example.pk).target == example.target


def test_form_save_is_audited_and_the_history_shows_the_changed_fields(reviewer_client):
    example = make_example(target=technology_target("GS-4"), status=Example.Status.APPROVED)
    target = edited(example, **{"0__machine_time_min_per_piece": 9})
    target["material"] = "1.4404"
    target["operations"].append(
        {"machine": "VS20 saw", "operation": "saw", "machine_time_min_per_piece": 1.5, "setup_min": 10}
    )

    response = reviewer_client.post(
        review_url(example),
        {"decision": "edit", "target": json.dumps(target, indent=2), "expected_target": example.target},
        follow=True,
    )

    saved = Example.objects.get(pk=example.pk)
    assert json.loads(saved.target) == target and saved.status == Example.Status.PENDING
    change = ExampleChange.objects.get(example=example, field="target")
    assert change.user.username == "rita" and change.before == example.target and change.after == saved.target
    page = response.content.decode()
    history = page[page.index('id="review-history"') :]
    for line in (
        "material: C45 → 1.4404",
        "turning on NZX 2000: time 12.5 → 9 min/pc",
        "saw on VS20 saw: added (1.5 min/pc, setup 10 min)",
        "approved → pending",
    ):
        assert line in history
    assert '"operations"' not in history  # no JSON blob in the history

    # The change page shows the same lines.
    change_page = reviewer_client.get(reverse("admin:curation_example_change", args=[example.pk])).content.decode()
    assert "turning on NZX 2000: time 12.5 → 9 min/pc" in change_page


def test_text_task_has_no_form_editor_only_the_raw_one(reviewer_client):
    task = make_task("support_reply")
    example = make_example(task=task, target="Thanks, we will call you.")
    response = reviewer_client.get(review_url(example))
    assert response.context["target_editor"] is None
    page = response.content.decode()
    assert 'id="target-editor"' not in page and '<details id="review-edit" open>' in page


# --- scans without a text layer -----------------------------------------------------------------------


def scan(part_number="GS-SCAN-1"):
    drawing = make_drawing(part_number=part_number)
    drawing.has_text_layer = False
    drawing.save(update_fields=["has_text_layer"])
    make_ground_truth(part_number, material="")
    make_task()
    return drawing


def material_url(drawing):
    return reverse("admin:curation_example_scan_material", args=[drawing.pk])


def test_reviewer_enters_the_material_of_a_scan_and_its_example_is_built_at_once(reviewer_client):
    drawing = scan()
    changelist = reviewer_client.get("/admin/curation/example/").content.decode()
    assert "Scans waiting for a material (1)" in changelist
    listing = reviewer_client.get(reverse("admin:curation_example_scans")).content.decode()
    assert material_url(drawing) in listing

    page = reviewer_client.get(material_url(drawing))
    assert page.status_code == 200 and 'class="review-page' in page.content.decode()  # the drawing beside the field

    response = reviewer_client.post(material_url(drawing), {"material": " 1.4404 "})
    example = Example.objects.get(drawing=drawing)
    assert response.status_code == 302 and response["Location"] == review_url(example)
    assert json.loads(example.target)["material"] == "1.4404" and example.status == Example.Status.PENDING
    ground_truth = GroundTruth.objects.get(part_number="GS-SCAN-1")
    assert ground_truth.material == "1.4404" and ground_truth.material_source == GroundTruth.MaterialSource.MANUAL
    assert "Scans waiting" not in reviewer_client.get("/admin/curation/example/").content.decode()


def test_an_empty_material_is_refused_and_builds_nothing(reviewer_client):
    drawing = scan()
    response = reviewer_client.post(material_url(drawing), {"material": "  "})
    assert response.status_code == 200
    assert "Enter the material as printed on the drawing." in messages_of(response)
    assert not Example.objects.exists()


def test_staff_without_review_permission_cannot_enter_a_material(client, looker):
    drawing = scan()
    client.force_login(looker)
    assert client.get(material_url(drawing)).status_code == 403
    assert client.post(material_url(drawing), {"material": "1.4404"}).status_code == 403
    assert client.get(reverse("admin:curation_example_scans")).status_code == 403
    assert GroundTruth.objects.get(part_number="GS-SCAN-1").material == ""
    assert not Example.objects.exists()
