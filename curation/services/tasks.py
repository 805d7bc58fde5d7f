"""Tasks: creating them from presets, and checking targets (and schemas) against a task's output contract."""
import json
from functools import lru_cache

import jsonschema
from django.db import transaction

from curation.models import Task
from curation.task_presets import PRESETS


class TargetInvalid(ValueError):
    """A target does not satisfy the task's schema; the message names the failing path."""


class TargetNotJSON(TargetInvalid):
    """The target of a JSON task is not JSON at all."""


class TargetSchemaMismatch(TargetInvalid):
    """The target is JSON but breaks the schema; `value` is what was parsed (evaluation scores it anyway)."""

    def __init__(self, message: str, value):
        super().__init__(message)
        self.value = value


class SchemaInvalid(ValueError):
    """A task's output schema is not itself a valid JSON Schema."""


class UnknownPreset(ValueError):
    pass


def is_text_task(task: Task) -> bool:
    # Chat tasks (support_reply, code_fix) answer in free text: the target is the text itself, not JSON.
    schema = task.output_schema or {}
    return isinstance(schema, dict) and schema.get("type") == "string"


@lru_cache(maxsize=32)
def _validator(schema_text: str):
    # Built once per schema: an eval run checks hundreds of answers against the same one.
    schema = json.loads(schema_text)
    return jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)(schema)


def _error_path(error: jsonschema.ValidationError) -> str:
    path = "$"
    for part in error.absolute_path:
        path += f"[{part}]" if isinstance(part, int) else f".{part}"
    return path


def schema_check(*, schema) -> None:
    """Raise SchemaInvalid when `schema` is not a usable JSON Schema (so a task edit cannot break every target)."""
    if not isinstance(schema, dict):
        raise SchemaInvalid("The output schema must be a JSON object.")
    validator_class = jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)
    try:
        validator_class.check_schema(schema)
    except jsonschema.SchemaError as exc:
        where = "/".join(str(p) for p in exc.absolute_path) or "(top level)"
        raise SchemaInvalid(f"The output schema is not valid JSON Schema at {where}: {exc.message}") from exc


def target_validate(*, task: Task, target_text: str):
    """Return the parsed target (dict/list/str) or raise TargetInvalid with the schema error path."""
    if is_text_task(task):
        value = target_text
    else:
        try:
            value = json.loads(target_text)
        except (TypeError, ValueError) as exc:
            raise TargetNotJSON(f"The target is not valid JSON: {exc}") from exc
    errors = list(_validator(json.dumps(task.output_schema or {}, sort_keys=True)).iter_errors(value))
    if errors:
        error = jsonschema.exceptions.best_match(errors)
        raise TargetSchemaMismatch(f"{_error_path(error)}: {error.message}", value)
    return value


def task_create_from_preset(*, slug: str) -> Task:
    """The task with this slug, created from its preset when missing (an existing task is left as edited)."""
    if slug not in PRESETS:
        raise UnknownPreset(f"No task preset named {slug!r}; known: {', '.join(sorted(PRESETS))}.")
    with transaction.atomic():
        task, _ = Task.objects.get_or_create(slug=slug, defaults=dict(PRESETS[slug]))
    return task


def task_get_or_create(*, slug: str) -> Task:
    """An existing task by slug, or one made from its preset; UnknownPreset when neither exists."""
    task = Task.objects.filter(slug=slug).first()
    return task or task_create_from_preset(slug=slug)
