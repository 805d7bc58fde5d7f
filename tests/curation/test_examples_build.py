"""Building examples from rendered drawings + ground truth; rebuild on ground-truth change; near-duplicates."""

import json

import pytest

from curation.models import Drawing, Example, ExampleChange, GroundTruth
from curation.openai_format import MAX_IMAGES_PER_EXAMPLE
from curation.provider_formats import RULES
from curation.provider_names import ProviderName
from curation.services.example_flags import examples_flag_near_duplicates
from curation.services.examples import examples_build
from curation.services.ground_truth import ground_truth_material_set
from curation.services.production import production_records_import
from curation.services.tasks import target_validate, task_create_from_preset
from tests.factories import make_drawing

pytestmark = pytest.mark.django_db

HEADER = "part_number,order_id,machine,operation,pieces,machine_time_min_per_piece,setup_min,recorded_at\n"


def _records(part_number, minutes="6.00", setup="40"):
    return HEADER + (
        f"{part_number},O1,VS20 saw,saw,10,1.10,12,2024-01-01\n"
        f"{part_number},O1,NZX 2000,turning,10,{minutes},{setup},2024-01-02\n"
        f"{part_number},O2,NZX 2000,turning,10,{minutes},{setup},2024-03-02\n"
    )


@pytest.fixture
def task():
    return task_create_from_preset(slug="technology_builder")


def _part_with_truth(part_number, *, pages=1, material="C45", seed=None):
    drawing = make_drawing(part_number=part_number, pages=pages, seed=seed)
    production_records_import(text=_records(part_number))
    ground_truth_material_set(ground_truth=GroundTruth.objects.get(part_number=part_number), material=material)
    return drawing


def test_build_makes_one_pending_schema_valid_example_per_drawing(task):
    drawing = _part_with_truth("E-100", pages=2)
    report = examples_build(task=task)
    assert report.created == 1
    example = Example.objects.get()
    assert example.status == Example.Status.PENDING and example.drawing == drawing
    target = target_validate(task=task, target_text=example.target)
    assert target["machines"] == ["VS20 saw", "NZX 2000"]
    assert [o["operation"] for o in target["operations"]] == ["saw", "turning"]
    assert target["material"] == "C45" and target["part_number"] == "E-100"
    assert example.group_key == "E-100"
    assert example.tags["machine"] == ["VS20 saw", "NZX 2000"] and example.tags["material"] == "C45"
    user_parts = example.messages[1]["content"]
    assert [p["image_url"]["url"] for p in user_parts[1:]] == [f"page:{p.pk}" for p in drawing.pages.all()]
    assert example.messages[0]["content"] == task.compact_prompt


def test_build_twice_changes_nothing(task):
    _part_with_truth("E-101")
    examples_build(task=task)
    before = list(Example.objects.values_list("pk", "target", "content_hash"))
    again = examples_build(task=task)
    assert (again.created, again.updated, again.unchanged) == (0, 0, 1)
    assert list(Example.objects.values_list("pk", "target", "content_hash")) == before


def test_drawings_without_records_or_material_are_skipped_with_a_reason(task):
    make_drawing(part_number="E-NOREC")
    make_drawing(part_number="E-NOMAT")
    production_records_import(text=_records("E-NOMAT"))  # factory PDFs have no title block: no material
    make_drawing(part_number="E-UPL", status=Drawing.Status.UPLOADED)
    report = examples_build(task=task, drawings=Drawing.objects.all())
    reasons = {s["part_number"]: s["reason"] for s in report.skipped}
    assert "no production records" in reasons["E-NOREC"]
    assert "no material" in reasons["E-NOMAT"]
    assert "not rendered" in reasons["E-UPL"]
    assert not Example.objects.exists()


def _turning(example_or_text):
    text = example_or_text if isinstance(example_or_text, str) else example_or_text.target
    return json.loads(text)["operations"][1]["machine_time_min_per_piece"]


def test_changed_ground_truth_keeps_an_approved_target_and_flags_it_with_was_and_now(task):
    # Experts' work is never lost: the approved target stays, the new ground truth waits for the reviewer.
    from curation.services.review import example_approve
    from tests.factories import make_user

    _part_with_truth("E-200")
    examples_build(task=task)
    example = Example.objects.get()
    example_approve(example=example, user=make_user("Reviewer"))
    approved_target = example.target

    report = production_records_import(text=_records("E-200", minutes="9.00"))
    assert (report.examples_rebuilt, report.examples_flagged) == (0, 1)
    example.refresh_from_db()
    assert example.status == Example.Status.APPROVED and example.target == approved_target
    assert _turning(example.ground_truth_target) == 9.0
    assert "Ground truth changed: turning on NZX 2000: time was 6, now 9 min/pc" in example.review_note
    flag = ExampleChange.objects.get(example=example, field="ground_truth")
    assert _turning(flag.before) == 6.0 and _turning(flag.after) == 9.0
    assert not ExampleChange.objects.filter(example=example, field="target").exists()


def test_rejected_example_keeps_its_status_and_target_when_its_ground_truth_changes(task):
    from curation.services.review import example_reject
    from tests.factories import make_user

    _part_with_truth("E-201")
    examples_build(task=task)
    example = example_reject(example=Example.objects.get(), user=make_user("Reviewer"), reason="wrong setup")
    rejected_target = example.target
    production_records_import(text=_records("E-201", setup="55"))
    example.refresh_from_db()
    assert example.status == Example.Status.REJECTED and example.target == rejected_target
    assert "setup was 40, now 55 min" in example.review_note
    assert ExampleChange.objects.filter(field="status").count() == 1  # the rejection, nothing after it


def test_build_again_never_rewrites_a_target_a_reviewer_edited(task):
    # Seen: example #3's turning time went back from the reviewer's 9.5 to the ground truth's value when
    # "Build examples" ran again, and the reviewer's note was replaced.
    from curation.services.review import example_target_update
    from tests.factories import make_user

    _part_with_truth("E-300")
    examples_build(task=task)
    example = Example.objects.get()
    edited = json.loads(example.target)
    edited["operations"][1]["machine_time_min_per_piece"] = 9.5
    example_target_update(example=example, user=make_user("Reviewer"), target_text=json.dumps(edited))

    report = examples_build(task=task)

    example.refresh_from_db()
    assert _turning(example) == 9.5
    assert "Ground truth changed" not in example.review_note
    assert example.ground_truth_target == ""  # the ground truth did not move: nothing to choose
    assert (report.updated, report.unchanged, report.flagged) == (0, 1, 0)
    assert ExampleChange.objects.filter(example=example, field="target").count() == 1  # the reviewer's edit


def test_build_action_flags_an_edited_example_when_its_ground_truth_moved(client, task):
    # The admin's "Build examples" after a ground-truth change (material entered by hand): target kept, flagged.
    from django.urls import reverse

    from curation.services.review import example_target_update
    from tests.factories import make_user

    _part_with_truth("E-301")
    examples_build(task=task)
    example = Example.objects.get()
    edited = json.loads(example.target)
    edited["operations"][1]["machine_time_min_per_piece"] = 9.5
    example_target_update(example=example, user=make_user("Reviewer"), target_text=json.dumps(edited))
    ground_truth_material_set(ground_truth=GroundTruth.objects.get(part_number="E-301"), material="42CrMo4")

    client.force_login(make_user("Manager"))
    response = client.post(
        reverse("admin:curation_task_changelist"),
        {"action": "build_examples", "_selected_action": [task.pk]},
        follow=True,
    )

    example.refresh_from_db()
    assert _turning(example) == 9.5 and json.loads(example.target)["material"] == "C45"
    assert json.loads(example.ground_truth_target)["material"] == "42CrMo4"
    assert "material was C45, now 42CrMo4" in example.review_note
    assert "1 reviewed examples flagged" in response.content.decode()
    flagged = client.get(reverse("admin:curation_example_changelist") + "?ground_truth_changed=yes")
    assert f"/admin/curation/example/{example.pk}/review/" in flagged.content.decode()


def test_build_command_flags_and_says_so(task, capsys):
    from django.core.management import call_command

    from curation.services.review import example_approve
    from tests.factories import make_user

    _part_with_truth("E-302")
    examples_build(task=task)
    example_approve(example=Example.objects.get(), user=make_user("Reviewer"))
    approved = Example.objects.get().target
    ground_truth_material_set(ground_truth=GroundTruth.objects.get(part_number="E-302"), material="S355")
    call_command("build_examples")
    assert "1 reviewed examples flagged" in capsys.readouterr().out
    assert Example.objects.get().target == approved


def test_ground_truth_recompute_action_flags_reviewed_examples_instead_of_rewriting(client, task):
    from django.urls import reverse

    from curation.models import ProductionRecord
    from curation.services.review import example_approve
    from tests.factories import make_user

    _part_with_truth("E-303")
    examples_build(task=task)
    example = example_approve(example=Example.objects.get(), user=make_user("Reviewer"))
    ProductionRecord.objects.filter(part_number="E-303", operation="turning").update(machine_time_min_per_piece="7.5")

    client.force_login(make_user("Manager"))
    ground_truth = GroundTruth.objects.get(part_number="E-303")
    response = client.post(
        reverse("admin:curation_groundtruth_changelist"),
        {"action": "recompute", "_selected_action": [ground_truth.pk]},
        follow=True,
    )

    assert "0 example targets rebuilt, 1 reviewed examples flagged" in response.content.decode()
    fresh = Example.objects.get()
    assert fresh.target == example.target and fresh.status == Example.Status.APPROVED
    assert _turning(fresh.ground_truth_target) == 7.5


def test_an_untouched_pending_example_follows_the_new_ground_truth(task):
    _part_with_truth("E-304")
    examples_build(task=task)
    report = production_records_import(text=_records("E-304", minutes="8.00"))
    example = Example.objects.get()
    assert (report.examples_rebuilt, report.examples_flagged) == (1, 0)
    assert _turning(example) == 8.0 and example.status == Example.Status.PENDING
    assert example.ground_truth_target == "" and "time was 6, now 8 min/pc" in example.review_note
    assert ExampleChange.objects.get(example=example, field="target").after == example.target


def test_a_flag_is_raised_once_and_lowered_when_the_ground_truth_goes_back(task):
    from curation.services.review import example_approve
    from tests.factories import make_user

    _part_with_truth("E-305")
    examples_build(task=task)
    example_approve(example=Example.objects.get(), user=make_user("Reviewer"))
    production_records_import(text=_records("E-305", minutes="9.00"))
    examples_build(task=task)  # the same change seen again by the build: no second flag
    assert ExampleChange.objects.filter(field="ground_truth").count() == 1
    production_records_import(text=_records("E-305"))  # back to 6.00
    example = Example.objects.get()
    assert example.ground_truth_target == "" and _turning(example) == 6.0
    assert ExampleChange.objects.filter(field="ground_truth").count() == 2


def _set_phash(drawing, value):
    drawing.pages.update(phash=f"{value:016x}")


def test_near_duplicate_pages_of_another_part_are_flagged(task):
    base = 0xF0F0_1234_ABCD_5555
    first = _part_with_truth("N-1")
    twin = _part_with_truth("N-2")  # differs in one bit: the same sheet rescanned under another number
    other = _part_with_truth("N-3")
    _set_phash(first, base)
    _set_phash(twin, base ^ 0b1)
    _set_phash(other, base ^ 0xFFFF_0000_0000_0000)
    examples_build(task=task)
    by_part = {e.group_key: e for e in Example.objects.all()}
    assert not by_part["N-1"].is_near_duplicate
    assert by_part["N-2"].is_near_duplicate and by_part["N-2"].near_duplicate_of == by_part["N-1"]
    assert not by_part["N-3"].is_near_duplicate
    # Idempotent, and cleared again once the pages no longer match.
    assert examples_flag_near_duplicates(task=task) == 1
    _set_phash(twin, base ^ 0xFF)
    assert examples_flag_near_duplicates(task=task) == 0
    assert not Example.objects.filter(is_near_duplicate=True).exists()


def test_same_part_drawn_twice_is_not_a_near_duplicate(task):
    first = _part_with_truth("S-1")
    second = make_drawing(part_number="S-1")
    _set_phash(first, 0x1234)
    _set_phash(second, 0x1234)
    examples_build(task=task)
    assert Example.objects.count() == 2
    assert not Example.objects.filter(is_near_duplicate=True).exists()


def test_build_command_reports_skipped_drawings(task, capsys):
    from django.core.management import call_command

    _part_with_truth("C-1")
    make_drawing(part_number="C-2")
    call_command("build_examples")
    out = capsys.readouterr().out
    assert "1 created" in out and "C-2: no production records" in out


def _post_build_action(client, task):
    from django.urls import reverse

    return client.post(
        reverse("admin:curation_task_changelist"),
        {"action": "build_examples", "_selected_action": [task.pk]},
        follow=True,
    )


def test_build_action_in_the_task_admin_is_for_managers_only(client, task):
    from tests.factories import make_user

    _part_with_truth("ADM-1")
    client.force_login(make_user("Reviewer"))
    _post_build_action(client, task)
    assert not Example.objects.exists()
    client.force_login(make_user("Manager"))
    response = _post_build_action(client, task)
    assert Example.objects.count() == 1
    assert "1 created" in response.content.decode()


def test_task_admin_refuses_a_schema_that_is_not_json_schema(task):
    from django.forms.models import model_to_dict

    from curation.admin.records import TaskForm

    data = model_to_dict(task)
    data["output_schema"] = json.dumps({"type": "objekt"})
    data["metric_spec"] = json.dumps(task.metric_spec)
    data["promotion_policy"] = json.dumps(task.promotion_policy)
    form = TaskForm(data=data, instance=task)
    assert not form.is_valid() and "not valid JSON Schema" in str(form.errors["output_schema"])
    data["output_schema"] = json.dumps(task.output_schema)
    assert TaskForm(data=data, instance=task).is_valid()


def test_material_entered_in_the_ground_truth_admin_survives_a_recompute(client):
    from django.urls import reverse

    from curation.services.ground_truth import ground_truth_compute
    from tests.factories import make_user

    make_drawing(part_number="GT-1")
    production_records_import(text=_records("GT-1"))
    ground_truth = GroundTruth.objects.get(part_number="GT-1")
    client.force_login(make_user("Manager"))
    url = reverse("admin:curation_groundtruth_change", args=[ground_truth.pk])
    page = client.get(url).content.decode()
    assert "VS20 saw" in page and "Trimmed means" in page
    assert client.post(url, {"material": "42CrMo4"}).status_code == 302
    assert ground_truth_compute(part_number="GT-1").material == "42CrMo4"


def test_pages_rendered_again_are_referenced_anew_without_a_new_review(task):
    from django.core.files.base import ContentFile

    from curation.models import DrawingPage

    drawing = _part_with_truth("RR-1")
    examples_build(task=task)
    Example.objects.update(status=Example.Status.APPROVED)
    old_page = drawing.pages.get()
    new_page = DrawingPage(
        drawing=drawing,
        number=1,
        width=old_page.width,
        height=old_page.height,
        format="png",
        bytes=old_page.bytes,
        sha256=old_page.sha256,
        phash=old_page.phash,
    )
    old_page.delete()
    new_page.image.save("p1.png", ContentFile(b"png"), save=True)
    report = examples_build(task=task)
    example = Example.objects.get()
    assert report.updated == 1 and example.status == Example.Status.APPROVED
    assert example.messages[1]["content"][1]["image_url"]["url"] == f"page:{new_page.pk}"


def test_a_drawing_whose_records_came_first_is_up_for_review_once_the_worker_renders_it(
    task, corpus, run_worker, django_capture_on_commit_callbacks
):
    from curation.services.drawing_uploads import drawing_ingest

    production_records_import(text=_records("10138363"))  # records first: no drawing yet, no ground truth
    assert not GroundTruth.objects.exists()
    with django_capture_on_commit_callbacks(execute=True):
        drawing, _ = drawing_ingest(
            content=(corpus / "drawings" / "10138363.pdf").read_bytes(), original_name="10138363.pdf"
        )
    run_worker("render")

    example = Example.objects.get(drawing=drawing)
    assert example.status == Example.Status.PENDING
    target = json.loads(example.target)
    assert target["material"] == "11SMnPb30"  # read from the title block at render time
    assert [op["operation"] for op in target["operations"]] == ["saw", "turning"]
    run_worker("render")  # nothing queued again, nothing duplicated
    assert Example.objects.filter(drawing=drawing).count() == 1


def test_a_failing_example_build_after_a_render_leaves_the_drawing_rendered(task, corpus, monkeypatch, caplog):
    from curation.services import examples as example_services
    from curation.services.drawing_uploads import drawing_ingest
    from curation.services.drawings import drawing_render

    production_records_import(text=_records("10138363"))
    drawing, _ = drawing_ingest(
        content=(corpus / "drawings" / "10138363.pdf").read_bytes(), original_name="10138363.pdf", enqueue=False
    )

    def broken(**kwargs):
        raise RuntimeError("database went away")

    monkeypatch.setattr(example_services, "examples_build", broken)
    drawing = drawing_render(drawing=drawing)
    assert drawing.status == Drawing.Status.RENDERED and drawing.pages.count() == 1
    assert GroundTruth.objects.get(part_number="10138363").material == "11SMnPb30"
    assert not Example.objects.exists()
    assert "example build after rendering drawing" in caplog.text


def test_migration_marks_existing_reviewed_examples_as_a_persons_and_finds_their_basis(task):
    # Databases from before the rule: a reviewer's edit (a target change with a user) makes the example a
    # person's; a machine rebuild (its note starts with "Ground truth") moves the basis, not the owner.
    import importlib

    from django.apps import apps

    from tests.factories import make_user

    backfill = importlib.import_module("curation.migrations.0004_example_ground_truth_drift").backfill
    _part_with_truth("M-1")
    _part_with_truth("M-2")
    examples_build(task=task)
    edited, rebuilt = Example.objects.get(group_key="M-1"), Example.objects.get(group_key="M-2")
    built_target = edited.target
    manager = make_user("Manager")
    ExampleChange.objects.create(
        example=edited, user=make_user("Reviewer"), field="target", before=built_target, after='{"edited": 9.5}'
    )
    ExampleChange.objects.create(
        example=rebuilt,
        user=manager,
        field="target",
        before=rebuilt.target,
        after='{"rebuilt": 1}',
        note="Ground truth of M-2 changed (3 production records)",
    )
    Example.objects.update(touched_by_person=False, ground_truth_basis="")

    backfill(apps, None)

    edited.refresh_from_db()
    rebuilt.refresh_from_db()
    assert edited.touched_by_person and edited.ground_truth_basis == built_target
    assert not rebuilt.touched_by_person and rebuilt.ground_truth_basis == '{"rebuilt": 1}'


def test_build_sends_no_more_pages_than_openai_takes(task):
    # A task edited outside the admin form may ask for more pages than OpenAI accepts in one example.
    task.max_images = MAX_IMAGES_PER_EXAMPLE + 2
    task.save()
    drawing = _part_with_truth("E-CAP", pages=MAX_IMAGES_PER_EXAMPLE + 1)
    examples_build(task=task)
    sent = [p["image_url"]["url"] for p in Example.objects.get().messages[1]["content"] if p["type"] == "image_url"]
    assert sent == [f"page:{p.pk}" for p in drawing.pages.order_by("number")[:10]]
    assert RULES[ProviderName.OPENAI].max_images_per_example == len(sent)
