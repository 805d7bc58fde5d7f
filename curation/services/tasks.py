"""Tasks: creating them from presets, and checking targets (and schemas) against a task's output contract."""

import json
import math
from functools import lru_cache

import jsonschema
from django.conf import settings
from django.db import transaction

from curation.models import Task
from curation.task_presets import PRESETS


class TargetInvalid(ValueError):
    """A target does not satisfy the task's schema; the message names the failing path."""


class TargetNotJSON(TargetInvalid):
    """The target of a JSON task is not JSON at all."""


class TargetRefused(TargetNotJSON):
    """The target is beyond what any writer accepts: NaN or Infinity, too deeply nested, or too large."""


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


def _refuse_constant(name: str):
    # NaN and Infinity are not JSON (RFC 8259): OpenAI refuses such a line, and PostgreSQL's jsonb cannot store them.
    raise TargetRefused(f"The target contains {name}: only finite numbers are allowed.")


def _finite_float(text: str) -> float:
    number = float(text)
    if not math.isfinite(number):  # 1e400 parses to inf
        raise TargetRefused(f"The target contains the number {text[:40]}, beyond the range of a float.")
    return number


def _check_depth(value, limit: int) -> None:
    # Iterative, so a deep value cannot exhaust the stack here (jsonschema itself recurses).
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, (dict, list)):
            if depth > limit:
                raise TargetRefused(f"The target is nested more than {limit} levels deep.")
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, depth + 1) for child in children)
        elif isinstance(item, float) and not math.isfinite(item):
            raise TargetRefused("The target contains NaN or Infinity: only finite numbers are allowed.")


def target_limits_check(value) -> None:
    """Raise TargetRefused when a parsed target holds a non-finite number or is nested too deeply."""
    _check_depth(value, settings.TARGET_MAX_DEPTH)


def target_validate(*, task: Task, target_text: str):
    """Return the parsed target (dict/list/str) or raise TargetInvalid with the schema error path.

    The one check every writer of a target uses (review edit, JSONL import, estimate correction, answers,
    dataset build): besides the task's schema it refuses, in JSON targets, NaN/Infinity, nesting deeper than
    TARGET_MAX_DEPTH and text longer than TARGET_MAX_BYTES, with a message a person can act on.
    """
    if is_text_task(task):
        # A free-text answer's length is a matter of tokens: the dataset build warns above a model's limit.
        value = target_text
    else:
        size = (
            len(target_text.encode("utf-8", "surrogatepass"))
            if isinstance(target_text, str)
            else len(target_text or b"")
        )
        if size > settings.TARGET_MAX_BYTES:
            raise TargetRefused(f"The target is {size:,} bytes: at most {settings.TARGET_MAX_BYTES:,} are allowed.")
        try:
            value = json.loads(target_text, parse_constant=_refuse_constant, parse_float=_finite_float)
        except RecursionError as exc:
            raise TargetRefused(f"The target is nested more than {settings.TARGET_MAX_DEPTH} levels deep.") from exc
        except TargetRefused:
            raise
        except (TypeError, ValueError) as exc:
            raise TargetNotJSON(f"The target is not valid JSON: {exc}") from exc
        target_limits_check(value)
    errors = list(_validator(json.dumps(task.output_schema or {}, sort_keys=True)).iter_errors(value))
    if errors:
        error = jsonschema.exceptions.best_match(errors)
        raise TargetSchemaMismatch(f"{_error_path(error)}: {error.message}", value)
    return value


def target_field_errors(*, task: Task, value) -> dict[str, str]:
    """Every schema error of a parsed target, one message per field path ("$.operations[1].setup_min"), for the
    form editor to show beside each field; {} when the target fits. `target_validate` stays the one that refuses."""
    errors = {}
    for error in _validator(json.dumps(task.output_schema or {}, sort_keys=True)).iter_errors(value):
        errors.setdefault(_error_path(error), error.message)
    return errors


def target_normalise(*, task: Task, value, target_text: str) -> str:
    """The stored form of a target `target_validate` accepted (`value` is what it returned): a text task's text as
    typed, any other target as one canonical JSON spelling, so that a reformatting alone is not a change, the
    export writes what the reviewer saw, and the same answer has the same content hash wherever it was written."""
    return target_text if is_text_task(task) else json.dumps(value, ensure_ascii=False)


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
