"""What the review screen shows of a target beyond the decision buttons: the form editor's data and the history
read as field-level changes. No writes; the admin view passes these to the templates."""

from curation import selectors
from curation.services.tasks import TargetInvalid, TargetSchemaMismatch, target_field_errors, target_validate
from curation.target_diff import change_lines

# Words a planner uses for the drawing task's fields; other schemas get their property names, humanised.
FIELD_LABELS = {
    "part_number": "Part number",
    "machine_time_min_per_piece": "Time min/pc",
    "setup_min": "Setup min",
}


def target_editor_data(*, example, edited_target: str | None) -> dict | None:
    """The json_script data of the form editor, or None when the schema is not an object of fields (text tasks):
    then the raw editor is the only one. After a refused save, the refused target and its errors per path."""
    schema = example.task.output_schema or {}
    if not (isinstance(schema, dict) and schema.get("type") == "object" and isinstance(schema.get("properties"), dict)):
        return None
    # Parsed by the one check every writer uses, never by a bare json.loads: a refused text may hold NaN (not
    # JSON, json_script would write it through) or be nested deep enough to exhaust the stack.
    errors = {}
    try:
        value = target_validate(
            task=example.task, target_text=example.target if edited_target is None else edited_target
        )
    except TargetSchemaMismatch as exc:
        value = exc.value
        if edited_target is not None:
            errors = target_field_errors(task=example.task, value=value) or {"$": str(exc)}
    except TargetInvalid as exc:
        value = None
        if edited_target is not None:
            errors = {"$": str(exc)}
    return {
        "schema": schema,
        "value": value,
        "choices": selectors.target_editor_choices(),
        "labels": FIELD_LABELS,
        "errors": errors,
    }


def history_rows(changes) -> list[dict]:
    """The history of an example, newest first, each change as lines a person reads ("material: C45 → 1.4404")."""
    return [
        {
            "at": change.at,
            "user": change.user,
            "field": change.field,
            "note": change.note,
            "lines": change_lines(field=change.field, before=change.before, after=change.after),
        }
        for change in changes
    ]
