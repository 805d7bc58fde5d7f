"""Field-level differences between two targets, for the history: "turning on NZX 2000: time 6 → 9 min/pc".

Pure (no ORM): takes the stored JSON texts of an ExampleChange and returns one line per changed field, so the
history reads like what the reviewer did, not like two JSON blobs.
"""

import json

ARROW = "→"
# The technology plan's operation fields, with the words and units a planner uses.
OPERATION_FIELDS = (("machine_time_min_per_piece", "time", "min/pc"), ("setup_min", "setup", "min"))
TEXT_LIMIT = 80


def _parsed(text):
    try:
        return json.loads(text)
    except (TypeError, ValueError):
        return None


def _scalar(value) -> str:
    if value is None or value == "":
        return "–"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, (dict, list)):
        value = json.dumps(value, ensure_ascii=False)
    text = str(value)
    return text if len(text) <= TEXT_LIMIT else text[:TEXT_LIMIT] + "…"


def _change(label: str, old, new, unit: str = "", *, colon: str = ":") -> str:
    return f"{label}{colon} {_scalar(old)} {ARROW} {_scalar(new)}" + (f" {unit}" if unit else "")


def _operation_rows(target: dict) -> dict | None:
    operations = target.get("operations")
    if not isinstance(operations, list) or not all(isinstance(op, dict) for op in operations):
        return None
    keys = [(op.get("machine"), op.get("operation")) for op in operations]
    if len(set(keys)) != len(keys):
        return None  # two rows for one machine and operation: compared by position instead
    return dict(zip(keys, operations, strict=True))


def _operations_diff(old: dict, new: dict) -> list[str] | None:
    old_rows, new_rows = _operation_rows(old), _operation_rows(new)
    if old_rows is None or new_rows is None:
        return None
    lines = []
    for key in [*old_rows, *[k for k in new_rows if k not in old_rows]]:
        label = f"{key[1]} on {key[0]}"
        if key not in new_rows:
            lines.append(f"{label}: removed")
        elif key not in old_rows:
            row = new_rows[key]
            lines.append(
                f"{label}: added ({_scalar(row.get('machine_time_min_per_piece'))} min/pc, "
                f"setup {_scalar(row.get('setup_min'))} min)"
            )
        else:
            for name, word, unit in OPERATION_FIELDS:
                if old_rows[key].get(name) != new_rows[key].get(name):
                    lines.append(
                        _change(f"{label}: {word}", old_rows[key].get(name), new_rows[key].get(name), unit, colon="")
                    )
            known = {"machine", "operation", *(name for name, _, _ in OPERATION_FIELDS)}
            extra = sorted((set(old_rows[key]) | set(new_rows[key])) - known)
            for name in extra:
                if old_rows[key].get(name) != new_rows[key].get(name):
                    lines.append(_change(f"{label}: {name}", old_rows[key].get(name), new_rows[key].get(name)))
    if not lines and old.get("operations") != new.get("operations"):
        lines.append("operations: order changed")
    return lines


def _generic_diff(old, new, path: str) -> list[str]:
    if isinstance(old, dict) and isinstance(new, dict):
        lines = []
        for key in [*old, *[k for k in new if k not in old]]:
            sub = f"{path}.{key}" if path else str(key)
            if key not in new:
                lines.append(f"{sub}: removed")
            elif key not in old:
                lines.append(_change(sub, None, new[key]))
            else:
                lines.extend(_generic_diff(old[key], new[key], sub))
        return lines
    if isinstance(old, list) and isinstance(new, list):
        lines = []
        for index in range(max(len(old), len(new))):
            sub = f"{path}[{index + 1}]"
            if index >= len(new):
                lines.append(f"{sub}: removed")
            elif index >= len(old):
                lines.append(_change(sub, None, new[index]))
            else:
                lines.extend(_generic_diff(old[index], new[index], sub))
        return lines
    if old == new and type(old) is type(new):
        return []
    return [_change(path or "value", old, new)]


def _scalar_lists(old, new) -> bool:
    # A list of names (machines) reads best as one line "a, b → a, c", not element by element.
    return (
        isinstance(old, list)
        and isinstance(new, list)
        and not any(isinstance(value, (dict, list)) for value in old + new)
    )


def target_diff(*, before: str, after: str) -> list[str]:
    """One line per changed field between two stored targets; [] when they hold the same value.

    Technology plans compare operations per (machine, operation) and lists like `machines` as a whole; any other
    JSON object by path (`dimensions.length: 10 → 12`); text targets (free-text tasks) as one before → after.
    """
    old, new = _parsed(before), _parsed(after)
    if not (isinstance(old, (dict, list)) and isinstance(new, (dict, list))):
        return [] if before == after else [_change("text", before, after)]
    if not (isinstance(old, dict) and isinstance(new, dict)):
        return _generic_diff(old, new, "")
    lines = []
    operations = _operations_diff(old, new) if "operations" in old or "operations" in new else None
    for key in [*old, *[k for k in new if k not in old]]:
        if key == "operations" and operations is not None:
            lines.extend(operations)
        elif key not in new:
            lines.append(f"{key}: removed")
        elif key not in old:
            lines.append(_change(key, None, new[key]))
        elif _scalar_lists(old[key], new[key]):
            if old[key] != new[key]:
                lines.append(
                    f"{key}: {', '.join(map(_scalar, old[key])) or '–'} {ARROW} "
                    f"{', '.join(map(_scalar, new[key])) or '–'}"
                )
        else:
            lines.extend(_generic_diff(old[key], new[key], key))
    return lines


def change_lines(*, field: str, before: str, after: str) -> list[str]:
    """What one ExampleChange row did, for the history: field-level lines for a target, before → after else."""
    if field in ("target", "ground_truth"):
        return target_diff(before=before, after=after) or ["no difference"]
    return [f"{_scalar(before)} {ARROW} {_scalar(after)}"]
