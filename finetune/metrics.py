"""Evaluation metrics from a task's metric spec: validity, exact match, MAPE/MdAPE/bias, bootstrap CIs, paired
comparison.

Pure functions on plain data (no ORM), so tests check them against hand-computed values.

A record is one example's outcome:
    {"id": example id, "target": parsed target, "output": parsed output or None,
     "json_valid": bool, "schema_valid": bool, "error_kind": "" | "refusal" | "invalid_json" | ...,
     "tags": {"industry": "...", "machine": [...], "material": "..."}}

Rules (written down because they change the numbers):
- Records with error_kind "api_error" are the provider's failure, not the model's: they are counted
  and left out of every rate. Refusals count as invalid JSON.
- A numeric path `operations[].machine_time_min_per_piece` is matched per key (spec "key", e.g.
  machine + operation); values of one key appearing twice are summed. A target value the model did
  not give (no JSON, no such operation) counts as a 100 % error, so bad JSON cannot flatter MAPE.
  Target values of 0 have no percentage error and are skipped (counted in `zero_actual`).
- Confidence intervals: percentile bootstrap over examples (pairs of one example move together),
  seeded, so the same data always gives the same interval.
"""

from __future__ import annotations

import random
from operator import itemgetter
from statistics import median
from typing import Any, Iterable

API_ERROR = "api_error"
DEFAULT_BOOTSTRAP = 1000
DEFAULT_SEED = 20261122


# --- small numeric helpers ------------------------------------------------------------------
def quantile(sorted_values: list[float], q: float) -> float:
    """Linear-interpolation quantile of already sorted values (numpy's default method)."""
    if not sorted_values:
        return float("nan")
    position = (len(sorted_values) - 1) * q
    low = int(position)
    high = min(low + 1, len(sorted_values) - 1)
    fraction = position - low
    return sorted_values[low] + (sorted_values[high] - sorted_values[low]) * fraction


_INDEX_CACHE: dict[tuple[int, int, int], list[list[int]]] = {}
_GETTER_CACHE: dict[tuple[int, int, int], list] = {}


def _resamples(n: int, n_boot: int, seed: int) -> list[list[int]]:
    """The bootstrap's index vectors for n groups: drawn once per (n, n_boot, seed) and shared by every
    statistic, so all intervals of one run come from the same resamples (and cost one draw)."""
    key = (n, n_boot, seed)
    cached = _INDEX_CACHE.get(key)
    if cached is None:
        rng = random.Random(seed)
        population = range(n)
        cached = [rng.choices(population, k=n) for _ in range(n_boot)]
        if len(_INDEX_CACHE) > 64:
            _INDEX_CACHE.clear()
            _GETTER_CACHE.clear()
        _INDEX_CACHE[key] = cached
    return cached


def _getters(n: int, n_boot: int, seed: int) -> list:
    """One itemgetter per resample: picking the resampled values runs in C (a metrics pass stays well under a
    second)."""
    key = (n, n_boot, seed)
    cached = _GETTER_CACHE.get(key)
    if cached is None:
        # itemgetter with one index returns a bare value, not a tuple: wrap it.
        cached = [
            itemgetter(*idx) if n > 1 else (lambda values, i=idx[0]: (values[i],))
            for idx in _resamples(n, n_boot, seed)
        ]
        _GETTER_CACHE[key] = cached
    return cached


def bootstrap_ci(
    groups: list[Any], statistic, *, n_boot: int = DEFAULT_BOOTSTRAP, seed: int = DEFAULT_SEED, level: float = 0.95
) -> list[float] | None:
    """Percentile interval of `statistic(resampled groups)`; resampling is over groups (examples)."""
    if not groups:
        return None
    stats = []
    for indices in _resamples(len(groups), n_boot, seed):
        value = statistic([groups[i] for i in indices])
        if value is not None:
            stats.append(value)
    return _interval(stats, level)


def _interval(stats: list[float], level: float) -> list[float] | None:
    if not stats:
        return None
    stats.sort()
    alpha = (1 - level) / 2
    return [quantile(stats, alpha), quantile(stats, 1 - alpha)]


def ratio_ci(
    numerators: list[float],
    denominators: list[float],
    *,
    n_boot: int = DEFAULT_BOOTSTRAP,
    seed: int = DEFAULT_SEED,
    level: float = 0.95,
) -> list[float] | None:
    """Interval of sum(num)/sum(den) over resampled groups: a pooled mean (or a pooled difference) in O(n) per
    resample."""
    if not numerators:
        return None
    stats = []
    getters = _getters(len(numerators), n_boot, seed)
    if all(d == 1.0 for d in denominators):
        n = float(len(numerators))
        stats = [sum(get(numerators)) / n for get in getters]
    else:
        for get in getters:
            den = sum(get(denominators))
            if den:
                stats.append(sum(get(numerators)) / den)
    return _interval(stats, level)


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def _pooled_mean(groups: list[list[float]]) -> float | None:
    total = count = 0
    for group in groups:
        total += sum(group)
        count += len(group)
    return total / count if count else None


def _pooled_median(groups: list[list[float]]) -> float | None:
    values = [v for group in groups for v in group]
    return median(values) if values else None


def _stat(groups, statistic, n_boot, seed) -> dict:
    value = statistic(groups)
    return {
        "value": value,
        "ci": bootstrap_ci(groups, statistic, n_boot=n_boot, seed=seed) if value is not None else None,
    }


def pooled_value(sums: list[float], counts: list[float]) -> float | None:
    """The pooled mean (MAPE, bias) from per-group sums and counts: an eval run's figure, and live accuracy's
    from the APE sums stored on scored estimates (summed per month in the database)."""
    total = sum(counts)
    return sum(sums) / total if total else None


def _pooled(groups: list[list[float]], n_boot: int, seed: int) -> dict:
    """Pooled mean over all values with its interval (groups = examples): same result as
    _stat(groups, _pooled_mean, ...), computed from per-group sums."""
    sums = [float(sum(g)) for g in groups]
    counts = [float(len(g)) for g in groups]
    value = pooled_value(sums, counts)
    ci = ratio_ci(sums, counts, n_boot=n_boot, seed=seed) if value is not None and n_boot else None
    return {"value": value, "ci": ci}


def _flags(flags: list[float], n_boot: int, seed: int) -> dict:
    return _pooled([[f] for f in flags], n_boot, seed)


# --- reading values out of a parsed answer --------------------------------------------------
def parse_path(path: str) -> tuple[str | None, str]:
    """ "operations[].setup_min" -> ("operations", "setup_min"); "weight" -> (None, "weight")."""
    if "[]." in path:
        array, leaf = path.split("[].", 1)
        return array, leaf
    return None, path


def _number(value) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (int, float)):
        return float(value)
    try:
        return float(str(value).replace(",", "."))
    except ValueError:
        return None


def numeric_values(obj, path: str, key_fields: list[str]) -> dict[tuple, float]:
    """{key: value} for a numeric path; a scalar path has the key ()."""
    if not isinstance(obj, dict):
        return {}
    array, leaf = parse_path(path)
    if array is None:
        number = _number(obj.get(leaf))
        return {(): number} if number is not None else {}
    items = obj.get(array)
    values: dict[tuple, float] = {}
    if not isinstance(items, list):
        return values
    for item in items:
        if not isinstance(item, dict):
            continue
        number = _number(item.get(leaf))
        if number is None:
            continue
        key = tuple(str(item.get(field, "")).strip() for field in key_fields)
        values[key] = values.get(key, 0.0) + number
    return values


def value_errors(record: dict, path: str, key_fields: list[str]) -> tuple[list[dict], int]:
    """Per target value: {key, actual, predicted, ape, pe}; and how many target values were 0.

    Memoised on the record (key "_errors"): every breakdown asks again for the same values.
    """
    memo = record.setdefault("_errors", {})
    memo_key = (path, tuple(key_fields))
    if memo_key not in memo:
        memo[memo_key] = _value_errors(record, path, key_fields)
    return memo[memo_key]


def _value_errors(record: dict, path: str, key_fields: list[str]) -> tuple[list[dict], int]:
    actual = numeric_values(record.get("target"), path, key_fields)
    predicted = numeric_values(record.get("output"), path, key_fields) if record.get("json_valid") else {}
    errors, zero = [], 0
    for key, true_value in actual.items():
        if true_value == 0:
            zero += 1
            continue
        guess = predicted.get(key)
        if guess is None:
            errors.append({"key": list(key), "actual": true_value, "predicted": None, "ape": 1.0, "pe": -1.0})
        else:
            pe = (guess - true_value) / abs(true_value)
            errors.append({"key": list(key), "actual": true_value, "predicted": guess, "ape": abs(pe), "pe": pe})
    return errors, zero


def categorical_match(record: dict, field: str) -> bool:
    target, output = record.get("target"), record.get("output")
    if not record.get("json_valid") or not isinstance(output, dict) or not isinstance(target, dict):
        return False
    expected, got = target.get(field), output.get(field)
    if isinstance(expected, str) and isinstance(got, str):
        return expected.strip() == got.strip()
    return expected == got


def example_score(record: dict, spec: dict) -> float:
    """One number per example, lower is better: mean APE of its numeric values, else the categorical miss rate."""
    key_fields = spec.get("key", [])
    apes = [e["ape"] for path in spec.get("numeric", []) for e in value_errors(record, path, key_fields)[0]]
    if apes:
        return sum(apes) / len(apes)
    fields = spec.get("categorical", [])
    if fields:
        return sum(0.0 if categorical_match(record, f) else 1.0 for f in fields) / len(fields)
    return 0.0 if record.get("json_valid") else 1.0


def _tag_values(record: dict, tag: str) -> list[str]:
    value = (record.get("tags") or {}).get(tag)
    if value in (None, "", []):
        target = record.get("target") if isinstance(record.get("target"), dict) else {}
        value = target.get(tag) or target.get(f"{tag}s")
    if value in (None, "", []):
        return ["(none)"]
    if isinstance(value, list):
        return [str(v) for v in value] or ["(none)"]
    return [str(value)]


# --- one run --------------------------------------------------------------------------------
def _numeric_block(
    records: list[dict], path: str, key_fields: list[str], n_boot: int, seed: int, *, median_ci: bool = True
) -> dict:
    groups, zero, missing = [], 0, 0
    for record in records:
        errors, zeros = value_errors(record, path, key_fields)
        zero += zeros
        missing += sum(1 for e in errors if e["predicted"] is None)
        if errors:
            groups.append(errors)
    apes = [[e["ape"] for e in g] for g in groups]
    pes = [[e["pe"] for e in g] for g in groups]
    # Breakdowns (median_ci=False) keep the MAPE interval only: medians cost a sort per resample.
    mdape = _stat(apes, _pooled_median, n_boot, seed) if median_ci else {"value": _pooled_median(apes), "ci": None}
    return {
        "mape": _pooled(apes, n_boot, seed),
        "mdape": mdape,
        "bias": _pooled(pes, n_boot if median_ci else 0, seed),
        "n_values": sum(len(g) for g in groups),
        "n_examples": len(groups),
        "missing": missing,
        "zero_actual": zero,
    }


def _rate(flags: list[float], n_boot: int, seed: int) -> dict:
    block = _flags(flags, n_boot, seed)
    block["n"] = len(flags)
    return block


def run_metrics(
    records: Iterable[dict], spec: dict, *, n_boot: int = DEFAULT_BOOTSTRAP, seed: int = DEFAULT_SEED, worst: int = 10
) -> dict:
    """All metrics of one eval run (see the module docstring for the rules)."""
    records = list(records)
    evaluated = [r for r in records if r.get("error_kind") != API_ERROR]
    key_fields = spec.get("key", [])
    error_counts: dict[str, int] = {}
    for record in records:
        if record.get("error_kind"):
            error_counts[record["error_kind"]] = error_counts.get(record["error_kind"], 0) + 1

    result: dict[str, Any] = {
        "n": len(records),
        "n_evaluated": len(evaluated),
        "api_errors": len(records) - len(evaluated),
        "error_counts": error_counts,
        "json_validity": _rate([1.0 if r.get("json_valid") else 0.0 for r in evaluated], n_boot, seed),
        "schema_validity": _rate([1.0 if r.get("schema_valid") else 0.0 for r in evaluated], n_boot, seed),
        "numeric": {},
        "categorical": {},
        "by_key": {},
        "by_tag": {},
        "bootstrap": {"n": n_boot, "seed": seed, "level": 0.95, "unit": "example"},
    }
    for path in spec.get("numeric", []):
        result["numeric"][path] = _numeric_block(evaluated, path, key_fields, n_boot, seed)
        array, _ = parse_path(path)
        if array is not None and key_fields:
            keys = sorted({tuple(e["key"]) for r in evaluated for e in value_errors(r, path, key_fields)[0]})
            per_key = {}
            for key in keys:
                groups = []
                for record in evaluated:
                    errors = [e for e in value_errors(record, path, key_fields)[0] if tuple(e["key"]) == key]
                    if errors:
                        groups.append(errors)
                apes = [[e["ape"] for e in g] for g in groups]
                pes = [[e["pe"] for e in g] for g in groups]
                per_key[" / ".join(key)] = {
                    "mape": _pooled(apes, n_boot, seed),
                    "bias": _pooled(pes, 0, seed),
                    "n_examples": len(groups),
                }
            result["by_key"][path] = per_key
    for field in spec.get("categorical", []):
        flags = [1.0 if categorical_match(r, field) else 0.0 for r in evaluated]
        result["categorical"][field] = {"accuracy": _flags(flags, n_boot, seed), "n": len(flags)}
    for tag in spec.get("tags", []):
        groups: dict[str, list[dict]] = {}
        for record in evaluated:
            for value in _tag_values(record, tag):
                groups.setdefault(value, []).append(record)
        result["by_tag"][tag] = {
            value: {
                "n": len(members),
                "json_validity": _mean([1.0 if r.get("json_valid") else 0.0 for r in members]),
                # Median intervals per tag value are left out: they cost a sort per resample and add little.
                "numeric": {
                    path: _numeric_block(members, path, key_fields, n_boot, seed, median_ci=False)
                    for path in spec.get("numeric", [])
                },
            }
            for value, members in sorted(groups.items())
        }
    result["worst"] = worst_examples(records, spec, limit=worst)
    return result


def worst_examples(records: list[dict], spec: dict, *, limit: int = 10) -> list[dict]:
    """The examples with the highest score (mean APE, or miss rate), errors first among equals."""
    rows = []
    for record in records:
        if record.get("error_kind") == API_ERROR:
            continue
        details = [
            {**e, "path": path}
            for path in spec.get("numeric", [])
            for e in value_errors(record, path, spec.get("key", []))[0]
        ]
        rows.append(
            {
                "id": record["id"],
                "score": example_score(record, spec),
                "error_kind": record.get("error_kind", ""),
                "details": details,
            }
        )
    rows.sort(key=lambda row: (-row["score"], 0 if row["error_kind"] else 1, row["id"]))
    return rows[:limit]


# --- two runs on the same examples ------------------------------------------------------------
def _paired(pairs: list[tuple[float, float]], n_boot: int, seed: int) -> dict:
    a = _mean([p[0] for p in pairs])
    b = _mean([p[1] for p in pairs])
    diffs = [p[1] - p[0] for p in pairs]
    return {
        "a": a,
        "b": b,
        "diff": _mean(diffs),
        "ci": ratio_ci(diffs, [1.0] * len(diffs), n_boot=n_boot, seed=seed) if pairs else None,
        "n": len(pairs),
    }


def compare_runs(
    records_a: Iterable[dict],
    records_b: Iterable[dict],
    spec: dict,
    *,
    n_boot: int = DEFAULT_BOOTSTRAP,
    seed: int = DEFAULT_SEED,
    tie_tolerance: float = 1e-9,
    top: int = 10,
) -> dict:
    """Paired comparison of run B against run A on the examples both have (api errors left out).

    Differences are B − A: for MAPE a negative difference means B is better; for accuracy and
    validity a positive one does. Intervals are bootstrap intervals over the shared examples.
    """
    a_by_id = {r["id"]: r for r in records_a if r.get("error_kind") != API_ERROR}
    b_by_id = {r["id"]: r for r in records_b if r.get("error_kind") != API_ERROR}
    shared = sorted(set(a_by_id) & set(b_by_id))
    key_fields = spec.get("key", [])
    result: dict[str, Any] = {
        "n_shared": len(shared),
        "only_a": len(set(a_by_id) - set(b_by_id)),
        "only_b": len(set(b_by_id) - set(a_by_id)),
        "numeric": {},
        "categorical": {},
    }

    result["json_validity"] = _paired(
        [(1.0 if a_by_id[i].get("json_valid") else 0.0, 1.0 if b_by_id[i].get("json_valid") else 0.0) for i in shared],
        n_boot,
        seed,
    )
    for path in spec.get("numeric", []):
        # Per example: (sum of APE in A, sum of APE in B, count); MAPE of a sample is pooled over its values.
        groups = []
        for i in shared:
            ea, _ = value_errors(a_by_id[i], path, key_fields)
            eb, _ = value_errors(b_by_id[i], path, key_fields)
            if ea:
                groups.append((sum(e["ape"] for e in ea), sum(e["ape"] for e in eb), len(ea)))

        count = sum(g[2] for g in groups)
        result["numeric"][path] = {
            "mape_a": sum(g[0] for g in groups) / count if count else None,
            "mape_b": sum(g[1] for g in groups) / count if count else None,
            "diff": (sum(g[1] for g in groups) - sum(g[0] for g in groups)) / count if count else None,
            "ci": ratio_ci([g[1] - g[0] for g in groups], [float(g[2]) for g in groups], n_boot=n_boot, seed=seed)
            if groups
            else None,
            "n_examples": len(groups),
        }
    for field in spec.get("categorical", []):
        result["categorical"][field] = _paired(
            [
                (
                    1.0 if categorical_match(a_by_id[i], field) else 0.0,
                    1.0 if categorical_match(b_by_id[i], field) else 0.0,
                )
                for i in shared
            ],
            n_boot,
            seed,
        )

    per_example = paired_example_scores(a_by_id, b_by_id, spec, tie_tolerance=tie_tolerance)
    outcomes = [row["outcome"] for row in per_example]
    result["b_wins"], result["b_losses"], result["ties"] = (outcomes.count(o) for o in ("win", "loss", "tie"))
    per_example.sort(key=lambda row: (-abs(row["diff"]), row["id"]))
    result["largest_differences"] = per_example[:top]
    return result


def paired_example_scores(
    a_by_id: dict[int, dict], b_by_id: dict[int, dict], spec: dict, *, tie_tolerance: float = 1e-9
) -> list[dict]:
    """Per shared example (by id): its score in A and in B (`example_score`), B − A, and whether B won, lost or
    tied. The comparison counts its wins and losses from these rows, and the comparison chart draws them."""
    rows = []
    for i in sorted(set(a_by_id) & set(b_by_id)):
        sa, sb = example_score(a_by_id[i], spec), example_score(b_by_id[i], spec)
        outcome = "win" if sb < sa - tie_tolerance else "loss" if sb > sa + tie_tolerance else "tie"
        rows.append({"id": i, "score_a": sa, "score_b": sb, "diff": sb - sa, "outcome": outcome})
    return rows


# --- Presentation shared by the admin, the commands and the model card --------------------------------


def pct(value, *, missing: str = "n/a") -> str:
    return missing if value is None else f"{value * 100:.1f} %"


def pct_with_ci(block: dict | None, *, missing: str = "n/a") -> str:
    """ "12.3 % (95 % CI 10.1 %–14.6 %)" for a {value, ci} block of `run_metrics`."""
    if not block or block.get("value") is None:
        return missing
    ci = block.get("ci")
    value = pct(block["value"], missing=missing)
    return f"{value} (95 % CI {pct(ci[0], missing=missing)}–{pct(ci[1], missing=missing)})" if ci else value


def metric_rows(metrics: dict) -> list[tuple[str, str, dict | None, Any]]:
    """The headline metrics of a run in display order: (metric name, field or path, {value, ci} block, n)."""
    rows = [
        ("JSON validity", "", metrics.get("json_validity"), (metrics.get("json_validity") or {}).get("n")),
        ("Schema validity", "", metrics.get("schema_validity"), (metrics.get("schema_validity") or {}).get("n")),
    ]
    for path, block in (metrics.get("numeric") or {}).items():
        rows += [
            (name, path, block.get(key), block.get("n_values"))
            for name, key in (("MAPE", "mape"), ("Median APE", "mdape"), ("Bias", "bias"))
        ]
    for field, block in (metrics.get("categorical") or {}).items():
        rows.append(("Exact match", field, block.get("accuracy"), block.get("n")))
    return rows


def usd(value, *, unknown: str = "unknown") -> str:
    """ "$0.002250" for a cost, "unknown" when no price was known (never "$0" for a cost nobody knows)."""
    return unknown if value is None else f"${value}"


def by_tag_items(metrics: dict, *, order: list[str] | None = None) -> list[tuple[str, dict]]:
    """The per-tag blocks of stored metrics in the metric spec's tag order (then by name), each tag's values sorted:
    PostgreSQL's jsonb does not keep key order, so two databases would list the same figures in different orders."""
    order = list(order or [])
    tags = sorted(
        (metrics.get("by_tag") or {}).items(),
        key=lambda item: (order.index(item[0]) if item[0] in order else len(order), item[0]),
    )
    return [(tag, dict(sorted(groups.items()))) for tag, groups in tags]  # values sorted, as `run_metrics` wrote them
