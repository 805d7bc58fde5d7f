"""Targets beyond what any writer accepts: NaN/Infinity, nesting deeper than 20, text above 64 KB.

One check (target_validate) refuses them on every path that writes a target: the review edit, the JSONL import,
the estimate correction (tests/finetune/test_estimates_hardening.py) and the dataset build for a target already stored.
"""

import json

import pytest

from curation.models import Dataset, Example
from curation.services.datasets import dataset_build
from curation.services.example_import import examples_import_jsonl
from curation.services.review import example_target_update
from curation.services.tasks import TargetInvalid, TargetRefused, target_validate, task_create_from_preset
from tests.factories import make_example, make_task, make_user, technology_target

pytestmark = pytest.mark.django_db


def _with_minutes(text_value: str) -> str:
    """A technology target whose first machine time is written as `text_value` (raw JSON)."""
    return json.dumps(technology_target("P-1")).replace(
        '"machine_time_min_per_piece": 12.5', f'"machine_time_min_per_piece": {text_value}', 1
    )


@pytest.mark.parametrize("raw", ["NaN", "Infinity", "-Infinity", "1e400"])
def test_non_finite_numbers_are_refused_with_a_clear_message(raw):
    task = task_create_from_preset(slug="technology_builder")
    text = _with_minutes(raw)
    assert raw in text
    with pytest.raises(TargetRefused, match="NaN|Infinity|range of a float"):
        target_validate(task=task, target_text=text)
    assert target_validate(task=task, target_text=_with_minutes("12.5"))


def test_nesting_and_size_are_limited(settings):
    task = task_create_from_preset(slug="technology_builder")
    deep = json.dumps(technology_target("P-1"))[:-1] + ', "notes": ' + "[" * 1000 + "]" * 1000 + "}"
    with pytest.raises(TargetRefused, match="nested more than 20 levels"):
        target_validate(task=task, target_text=deep)
    just_too_deep = json.dumps(technology_target("P-1"))[:-1] + ', "notes": ' + "[" * 20 + "]" * 20 + "}"
    with pytest.raises(TargetRefused, match="nested more than 20 levels"):
        target_validate(task=task, target_text=just_too_deep)
    huge = json.dumps({**technology_target("P-1"), "notes": "x" * 9_000_000})
    with pytest.raises(TargetRefused, match=r"9,000,\d+ bytes: at most 65,536"):
        target_validate(task=task, target_text=huge)
    chat = task_create_from_preset(slug="support_reply")  # free text: its length is a matter of tokens
    assert target_validate(task=chat, target_text="y" * 70_000)
    settings.TARGET_MAX_BYTES = 10_000_000
    settings.TARGET_MAX_DEPTH = 40
    with pytest.raises(TargetInvalid):  # within the limits now, the schema still decides
        target_validate(task=task, target_text=huge)


def test_review_edit_refuses_nan_and_keeps_the_old_target(roles, client):
    reviewer = make_user("Reviewer")
    example = make_example(task=make_task())
    before = example.target
    with pytest.raises(TargetRefused):
        example_target_update(example=example, user=reviewer, target_text=_with_minutes("NaN"))
    client.force_login(reviewer)
    url = f"/admin/curation/example/{example.pk}/review/"
    deep = "[" * 1000 + "]" * 1000
    for text in (_with_minutes("Infinity"), deep):
        response = client.post(url, {"decision": "edit", "target": text, "expected_target": before})
        assert response.status_code == 200
        assert any("Target not saved" in str(m) for m in response.context["messages"])
    assert Example.objects.get(pk=example.pk).target == before


def test_jsonl_import_reports_nan_deep_and_huge_answers_by_line():
    task_create_from_preset(slug="technology_builder")

    def line(answer: str) -> str:
        return json.dumps(
            {
                "task": "technology_builder",
                "messages": [
                    {"role": "user", "content": "Drawing of part P-1."},
                    {"role": "assistant", "content": answer},
                ],
            }
        )

    good = json.dumps(technology_target("P-1"))
    lines = [
        line(_with_minutes("NaN")),
        line("[" * 1000 + "]" * 1000),
        line(good),
        '{"task": "technology_builder", "messages": ' + "[" * 5000 + "]" * 5000 + "}",
    ]
    report = examples_import_jsonl(text="\n".join(lines))
    assert report.created == 1
    reasons = {d["line"]: d["reason"] for d in report.defects}
    assert "NaN" in reasons[1] and "nested more than 20" in reasons[2] and 4 in reasons
    assert Example.objects.get().target == good


def test_dataset_build_refuses_a_non_finite_target_already_stored():
    task = make_task()
    for i in range(4):
        make_example(task=task, status=Example.Status.APPROVED, target=technology_target(f"P-{i}", minutes=5 + i))
    stored = make_example(task=task, status=Example.Status.APPROVED, target=_with_minutes("NaN").replace("P-1", "P-9"))
    version = dataset_build(dataset=Dataset.objects.create(name="tech", task=task))
    assert not version.gates_passed
    problem = next(p for p in version.problems if p["example_id"] == stored.pk)
    assert problem["code"] == "target_invalid" and "NaN" in problem["message"]
