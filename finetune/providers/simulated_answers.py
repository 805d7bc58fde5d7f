"""What the simulated provider answers and how its training went: seeded, so the same model and drawing always get
the same answer and the same run always has the same curve. No ORM: the truth comes in as plain values.

A fine-tuned model strays ~10 % from the truth (each number off by 4-16 %), a base model ~40 % (25-60 %) and
misreads the material now and then, so an evaluation shows the fine-tuned model ahead. A drawing without a
ground truth gets an answer made up from the task's JSON schema, which still validates against it.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
from dataclasses import dataclass, field
from typing import Any

# |relative error| of each number: (low, high), drawn uniformly, sign random.
FINE_TUNED_NOISE = (0.04, 0.16)
BASE_NOISE = (0.25, 0.60)
# The share of answers in which a base model misreads a string field other than the ones it is told (material).
BASE_STRING_SLIPS = 0.35
SIMULATED_MARK = ":simulated:"


@dataclass(frozen=True)
class DrawingTruth:
    """What the simulated provider knows of a drawing: a stable key (the drawing's content hash), its ground-truth
    target (None when the part has none), the task's schema and hints for made-up answers (part number, material)."""

    key: str
    target: Any = None
    schema: dict = field(default_factory=dict)
    hints: dict = field(default_factory=dict)


def seeded(*parts: object) -> random.Random:
    digest = hashlib.sha256("|".join(str(p) for p in parts).encode()).hexdigest()
    return random.Random(int(digest[:16], 16))


def is_fine_tuned(model: str) -> bool:
    return model.startswith("ft:")


def fine_tuned_name(*, base: str, suffix: str, run_id: str) -> str:
    """OpenAI's spelling (`ft:BASE:org:suffix:id`), so lifecycle and prices find the base; `simulated` as org."""
    clean = "".join(c if c.isalnum() or c in "-_" else "-" for c in (suffix or "demo"))[:40] or "demo"
    return f"ft:{base}{SIMULATED_MARK}{clean}:run{run_id}"


def _number(value: float, rng: random.Random, noise: tuple[float, float], *, integer: bool) -> float | int:
    error = rng.uniform(*noise) * rng.choice((-1, 1))
    result = max(0.0, value * (1 + error)) if value >= 0 else value * (1 + error)
    return int(round(result)) if integer else round(result, 2)


def perturb(
    value: Any,
    rng: random.Random,
    noise: tuple[float, float],
    *,
    slips: float = 0.0,
    keep: frozenset[str] = frozenset(),
    name: str = "",
) -> Any:
    """The truth with every number off by `noise` and, with probability `slips`, a string field replaced by
    another value of the same answer (a misread); fields named in `keep` stay as they are."""
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, (int, float)):
        return _number(float(value), rng, noise, integer=isinstance(value, int))
    if isinstance(value, list):
        return [perturb(item, rng, noise, slips=slips, keep=keep, name=name) for item in value]
    if isinstance(value, dict):
        return {
            key: (item if key in keep else perturb(item, rng, noise, slips=slips, keep=keep, name=key))
            for key, item in value.items()
        }
    if isinstance(value, str) and slips and rng.random() < slips and name in ("material",):
        return value.rsplit(" ", 1)[0] + " (?)" if " " in value else value + "-X"
    return value


def from_schema(schema: dict, rng: random.Random, *, hints: dict, name: str = "") -> Any:
    """A plausible value valid against `schema` (the subset tasks use: object, array, string with enum or
    minLength, number/integer with minimum, boolean); string fields named in `hints` take the hint."""
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if "enum" in schema:
        return rng.choice(list(schema["enum"]))
    if kind == "object":
        properties = schema.get("properties") or {}
        return {
            key: from_schema(properties.get(key) or {"type": "string"}, rng, hints=hints, name=key)
            for key in (schema.get("required") or list(properties))
        }
    if kind == "array":
        low = int(schema.get("minItems", 1))
        high = max(low, int(schema.get("maxItems", low + 2)))
        items = schema.get("items") or {"type": "string"}
        return [from_schema(items, rng, hints=hints, name=name) for _ in range(rng.randint(low, min(high, low + 2)))]
    if kind in ("number", "integer"):
        low = float(schema.get("minimum", 0))
        value = low + rng.uniform(0.5, 20.0)
        if "maximum" in schema:
            value = min(value, float(schema["maximum"]))
        return int(value) if kind == "integer" else round(value, 2)
    if kind == "boolean":
        return rng.random() < 0.5
    if kind == "null":
        return None
    text = str(hints.get(name) or f"simulated {name or 'value'}")
    return text.ljust(int(schema.get("minLength", 0)), "x")


def answer(*, model: str, truth: DrawingTruth | None, json_output: bool, fallback_key: str) -> str:
    """The text a simulated model answers: the truth with its model kind's noise, seeded by model + drawing."""
    key = truth.key if truth is not None else fallback_key
    rng = seeded(model, key)
    fine_tuned = is_fine_tuned(model)
    if truth is not None and truth.target is not None:
        noise = FINE_TUNED_NOISE if fine_tuned else BASE_NOISE
        value = perturb(
            truth.target, rng, noise, slips=0.0 if fine_tuned else BASE_STRING_SLIPS, keep=frozenset({"part_number"})
        )
    elif truth is not None and truth.schema:
        value = from_schema(truth.schema, rng, hints=truth.hints)
    elif json_output:
        value = {"answer": f"simulated answer {rng.randint(1000, 9999)}"}
    else:
        return f"Simulated answer {rng.randint(1000, 9999)}: thank you for your message, we will get back to you."
    if not json_output and isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False)


# --- training: the curve, events and checkpoints of a simulated job ---------------------------------


def training_curve(*, job_id: str, steps: int, epochs: int) -> list[dict]:
    """Per-step metrics like OpenAI's result file: loss falling from ~2 towards ~0.2 with seeded jitter,
    validation loss every few steps and at the end, token accuracy rising."""
    rng = seeded("curve", job_id)
    floor, start, speed = rng.uniform(0.12, 0.25), rng.uniform(1.6, 2.4), rng.uniform(3.0, 5.0)
    every = max(1, steps // max(1, 4 * epochs))
    rows = []
    for step in range(1, steps + 1):
        progress = step / steps
        loss = floor + (start - floor) * math.exp(-speed * progress) * rng.uniform(0.9, 1.1)
        row = {"step": step, "train_loss": round(loss, 4), "train_accuracy": round(min(0.99, 1 - loss / 2.6), 4)}
        if step % every == 0 or step == steps:
            valid = loss * rng.uniform(1.05, 1.2)
            row.update(valid_loss=round(valid, 4), valid_mean_token_accuracy=round(min(0.99, 1 - valid / 2.6), 4))
        rows.append(row)
    return rows


def result_csv(rows: list[dict]) -> bytes:
    columns = ["step", "train_loss", "train_accuracy", "valid_loss", "valid_mean_token_accuracy"]
    lines = [",".join(columns)]
    for row in rows:
        lines.append(",".join("" if row.get(c) is None else str(row[c]) for c in columns))
    return ("\n".join(lines) + "\n").encode()
