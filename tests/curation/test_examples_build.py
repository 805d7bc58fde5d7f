"""Building examples from rendered drawings + ground truth; rebuild on ground-truth change; near-duplicates."""
import json

import pytest

from curation.models import Drawing, Example, ExampleChange, GroundTruth
from curation.services.examples import examples_build, examples_flag_near_duplicates
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


def test_changed_ground_truth_sends_an_approved_example_back_to_pending_with_a_note(task):
    _part_with_truth("E-200")
    examples_build(task=task)
    example = Example.objects.get()
    Example.objects.filter(pk=example.pk).update(status=Example.Status.APPROVED)
    old_target = example.target

    report = production_records_import(text=_records("E-200", minutes="9.00"))
    assert report.examples_rebuilt == 1
    example.refresh_from_db()
    assert example.status == Example.Status.PENDING
    assert "Ground truth of E-200 changed" in example.review_note
    assert json.loads(example.target)["operations"][1]["machine_time_min_per_piece"] == 9.0
    changes = {c.field: c for c in ExampleChange.objects.filter(example=example)}
    assert (changes["target"].before, changes["target"].after) == (old_target, example.target)
    assert (changes["status"].before, changes["status"].after) == ("approved", "pending")


def test_rejected_example_keeps_its_status_when_its_target_is_rebuilt(task):
    _part_with_truth("E-201")
    examples_build(task=task)
    Example.objects.update(status=Example.Status.REJECTED)
    production_records_import(text=_records("E-201", setup="55"))
    assert Example.objects.get().status == Example.Status.REJECTED
    assert ExampleChange.objects.filter(field="status").count() == 0


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

    return client.post(reverse("admin:curation_task_changelist"),
                       {"action": "build_examples", "_selected_action": [task.pk]}, follow=True)


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
    new_page = DrawingPage(drawing=drawing, number=1, width=old_page.width, height=old_page.height, format="png",
                           bytes=old_page.bytes, sha256=old_page.sha256, phash=old_page.phash)
    old_page.delete()
    new_page.image.save("p1.png", ContentFile(b"png"), save=True)
    report = examples_build(task=task)
    example = Example.objects.get()
    assert report.updated == 1 and example.status == Example.Status.APPROVED
    assert example.messages[1]["content"][1]["image_url"]["url"] == f"page:{new_page.pk}"


def test_a_drawing_whose_records_came_first_is_up_for_review_once_the_worker_renders_it(task, corpus, run_worker,
                                                                                         django_capture_on_commit_callbacks):
    from curation.services.drawings import drawing_ingest

    production_records_import(text=_records("10138363"))  # records first: no drawing yet, no ground truth
    assert not GroundTruth.objects.exists()
    with django_capture_on_commit_callbacks(execute=True):
        drawing, _ = drawing_ingest(content=(corpus / "drawings" / "10138363.pdf").read_bytes(), original_name="10138363.pdf")
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
    from curation.services.drawings import drawing_ingest, drawing_render

    production_records_import(text=_records("10138363"))
    drawing, _ = drawing_ingest(content=(corpus / "drawings" / "10138363.pdf").read_bytes(),
                                original_name="10138363.pdf", enqueue=False)

    def broken(**kwargs):
        raise RuntimeError("database went away")

    monkeypatch.setattr(example_services, "examples_build", broken)
    drawing = drawing_render(drawing=drawing)
    assert drawing.status == Drawing.Status.RENDERED and drawing.pages.count() == 1
    assert GroundTruth.objects.get(part_number="10138363").material == "11SMnPb30"
    assert not Example.objects.exists()
    assert "example build after rendering drawing" in caplog.text
