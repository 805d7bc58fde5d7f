"""Tasks from presets and target validation: an invalid target is refused with the path of the error."""

import json

import pytest

from curation.services.tasks import (
    SchemaInvalid,
    TargetInvalid,
    TargetNotJSON,
    TargetSchemaMismatch,
    schema_check,
    target_validate,
    task_create_from_preset,
)
from tests.factories import technology_target

pytestmark = pytest.mark.django_db


def test_valid_target_is_parsed():
    task = task_create_from_preset(slug="technology_builder")
    parsed = target_validate(task=task, target_text=json.dumps(technology_target("10138363")))
    assert parsed["part_number"] == "10138363"


def test_invalid_target_names_the_failing_path():
    task = task_create_from_preset(slug="technology_builder")
    target = technology_target("10138363")
    target["operations"][1]["setup_min"] = -3
    with pytest.raises(TargetSchemaMismatch, match=r"\$\.operations\[1\]\.setup_min") as mismatch:
        target_validate(task=task, target_text=json.dumps(target))
    assert mismatch.value.value == target  # evaluation still scores what was parsed
    with pytest.raises(TargetNotJSON, match="not valid JSON"):
        target_validate(task=task, target_text="{oops")


def test_text_task_takes_plain_text_and_refuses_empty():
    task = task_create_from_preset(slug="support_reply")
    assert target_validate(task=task, target_text="Thanks, done.") == "Thanks, done."
    with pytest.raises(TargetInvalid):
        target_validate(task=task, target_text="")


def test_preset_creation_is_idempotent_and_keeps_edits():
    task = task_create_from_preset(slug="technology_builder")
    task.compact_prompt = "edited"
    task.save()
    again = task_create_from_preset(slug="technology_builder")
    assert again.pk == task.pk and again.compact_prompt == "edited"


def test_broken_schema_is_refused():
    with pytest.raises(SchemaInvalid):
        schema_check(schema={"type": "objekt"})
    schema_check(schema={"type": "object"})
