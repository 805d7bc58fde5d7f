"""What the review screen shows of a target beyond the decision buttons: the form editor's data and the history
read as field-level changes. No writes; the admin view passes these to the templates."""
import json

from curation import selectors
from curation.services.tasks import TargetInvalid, target_field_errors, target_validate
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
    text = example.target if edited_target is None else edited_target
    try:
        value = json.loads(text)
    except (TypeError, ValueError):
        value = None
    errors = {}
    if edited_target is not None:
        try:
            target_validate(task=example.task, target_text=edited_target)
        except TargetInvalid as exc:
            # The message of the one check that refused, then every schema error for its own field.
            errors = {"$": str(exc)} if value is None else target_field_errors(task=example.task, value=value) or {
                "$": str(exc)}
    return {"schema": schema, "value": value, "choices": selectors.target_editor_choices(), "labels": FIELD_LABELS,
            "errors": errors}


def history_rows(changes) -> list[dict]:
    """The history of an example, newest first, each change as lines a person reads ("material: C45 → 1.4404")."""
    return [{"at": change.at, "user": change.user, "field": change.field, "note": change.note,
             "lines": change_lines(field=change.field, before=change.before, after=change.after)}
            for change in changes]
