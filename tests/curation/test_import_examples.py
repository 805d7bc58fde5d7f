"""Chat JSONL import: each defective line by number and reason, duplicates and low confidence counted."""

import json

import pytest
from django.core.management import call_command

from curation.models import Example, GroundTruth, Task
from curation.services.example_import import examples_import_jsonl
from curation.services.examples import examples_build
from curation.services.ground_truth import ground_truth_material_set
from curation.services.production import production_records_import
from curation.services.tasks import task_create_from_preset
from curation.task_presets import DRAWING_TASK_SLUG
from tests.factories import make_drawing, make_example

pytestmark = pytest.mark.django_db


def _expected(corpus):
    return json.loads((corpus / "ground_truth.json").read_text())["chat_examples"]


def _valid_lines(corpus):
    """The corpus lines that are not listed as defects, parsed."""
    defects = {d["line"] for d in _expected(corpus)["defects"]}
    lines = (corpus / "chat_examples.jsonl").read_text().splitlines()
    return [json.loads(raw) for number, raw in enumerate(lines, 1) if number not in defects]


def test_corpus_defects_are_reported_by_line_and_kind(corpus):
    expected = _expected(corpus)
    report = examples_import_jsonl(text=(corpus / "chat_examples.jsonl").read_text(), source_name="chat.jsonl")
    assert [(d["line"], d["code"]) for d in report.defects] == [(d["line"], d["defect"]) for d in expected["defects"]]
    assert all(d["reason"] for d in report.defects)
    assert report.lines == expected["lines"]
    assert report.created == expected["valid"] == Example.objects.count()
    assert report.duplicates == 1
    # Tasks come from the lines' slugs, created from their presets.
    assert set(Task.objects.values_list("slug", flat=True)) == {"support_reply", "code_fix"}


def test_imported_example_keeps_prompt_answer_and_metadata(corpus):
    examples_import_jsonl(text=(corpus / "chat_examples.jsonl").read_text())
    first = _valid_lines(corpus)[0]
    example = Example.objects.get(target=first["messages"][-1]["content"], task__slug=first["task"])
    assert example.messages == first["messages"][:-1]
    assert example.confidence == first["confidence"]
    assert example.tags == {"industry": first["industry"], "origin": first["source"]}
    assert example.source == Example.Source.IMPORTED and example.status == Example.Status.PENDING


def test_reimport_creates_nothing_and_counts_duplicates(corpus):
    text = (corpus / "chat_examples.jsonl").read_text()
    first = examples_import_jsonl(text=text)
    again = examples_import_jsonl(text=text)
    assert again.created == 0
    assert again.duplicates == first.created + 1
    assert Example.objects.count() == first.created


def test_min_confidence_skips_and_counts(corpus):
    threshold = 0.8
    wanted = sum(1 for line in _valid_lines(corpus) if line["confidence"] >= threshold)
    report = examples_import_jsonl(text=(corpus / "chat_examples.jsonl").read_text(), min_confidence=threshold)
    assert report.created == wanted == Example.objects.count()
    assert report.below_min_confidence == len(_valid_lines(corpus)) - wanted
    assert not Example.objects.filter(confidence__lt=threshold).exists()


def test_too_long_limit_is_a_setting(settings):
    task_create_from_preset(slug="support_reply")
    line = {
        "messages": [{"role": "user", "content": "word " * 50}, {"role": "assistant", "content": "ok"}],
        "task": "support_reply",
        "confidence": 0.9,
    }
    settings.EXAMPLES_IMPORT_MAX_TOKENS = 20
    report = examples_import_jsonl(text=json.dumps(line))
    assert report.defects[0]["code"] == "too_long" and "limit of 20" in report.defects[0]["reason"]
    settings.EXAMPLES_IMPORT_MAX_TOKENS = 1000
    assert examples_import_jsonl(text=json.dumps(line)).created == 1


def test_unknown_task_and_chosen_task():
    line = json.dumps(
        {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}], "task": "poetry"}
    )
    report = examples_import_jsonl(text=line)
    assert report.defects[0]["code"] == "unknown_task" and "poetry" in report.defects[0]["reason"]
    task = task_create_from_preset(slug="support_reply")
    assert examples_import_jsonl(text=line, task=task).created == 1


def test_command_prints_the_report(corpus, capsys):
    call_command("import_examples", str(corpus / "chat_examples.jsonl"), "--min-confidence", "0.9")
    out = capsys.readouterr().out
    assert "line 8: invalid JSON" in out and "line 42: exact duplicate of line 5" in out
    assert "below the minimum confidence" in out
    assert not Example.objects.filter(confidence__lt=0.9).exists()


NON_ASCII = "Ø 12 ±0,05 – Kühlung"


def test_a_line_equal_to_a_stored_example_with_non_ascii_text_is_a_duplicate():
    """One content hash for every writer: an answer stored earlier is recognised whatever its characters, and
    however the file spells them (another tool writes "Ø" as "\\u00d8")."""
    task = task_create_from_preset(slug="support_reply")
    stored = make_example(task=task, target=f"Bohrung {NON_ASCII}: Kühlmittel prüfen.")
    line = {"messages": [*stored.messages, {"role": "assistant", "content": stored.target}]}
    for text in (json.dumps(line, ensure_ascii=False), json.dumps(line)):
        report = examples_import_jsonl(text=text, task=task)
        assert (report.created, report.duplicates) == (0, 1)
    assert list(Example.objects.filter(task=task)) == [stored]


def test_a_built_example_with_non_ascii_text_is_not_imported_again():
    task = task_create_from_preset(slug=DRAWING_TASK_SLUG)
    task.user_prompt_template = "Drawing of part {part_number} (" + NON_ASCII + ")."
    task.save()
    make_drawing(part_number="U-1")
    production_records_import(
        text="part_number,order_id,machine,operation,pieces,machine_time_min_per_piece,setup_min\n"
        "U-1,O1,NZX 2000,turning,10,6.5,40\n"
    )
    ground_truth_material_set(ground_truth=GroundTruth.objects.get(part_number="U-1"), material="1.4301 (Kühlung)")
    assert examples_build(task=task).created == 1
    built = Example.objects.get(task=task)
    assert NON_ASCII in built.messages[1]["content"][0]["text"] and "Kühlung" in built.target
    line = json.dumps({"messages": [*built.messages, {"role": "assistant", "content": built.target}]})
    report = examples_import_jsonl(text=line, task=task)
    assert (report.created, report.duplicates) == (0, 1)
