"""Importing production records (machine and setup times per order) from the shop's CSV export.

Valid rows are stored by their natural key (part, order, machine, operation), so importing the same file
again changes nothing; each invalid row is reported with its line number and reason, nothing else is lost.
"""

import csv
import io
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal, InvalidOperation

from django.db import transaction

from curation.models import Drawing, Machine, ProductionRecord

REQUIRED_COLUMNS = [
    "part_number",
    "order_id",
    "machine",
    "operation",
    "pieces",
    "machine_time_min_per_piece",
    "setup_min",
]
OPTIONAL_COLUMNS = ["recorded_at"]
# The model stores 3 decimals in at most 10 digits: larger values are typos, not machine times.
_MAX_MINUTES = Decimal("9999999")
# PositiveIntegerField's range on every database Django supports.
_MAX_PIECES = 2_147_483_647
# How often a background import reports: every so many lines read, and per batch of parts recomputed.
_PROGRESS_ROWS = 500
_PROGRESS_PARTS = 200


class ProductionCsvInvalid(ValueError):
    """The file as a whole cannot be read (encoding, missing columns); no row was imported."""


@dataclass
class ImportReport:
    source_name: str = ""
    rows: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    invalid: list = field(default_factory=list)  # [{"line", "reason", "part_number"}]
    without_drawing: dict = field(default_factory=dict)  # part number -> [line, ...]
    unknown_machines: list = field(default_factory=list)
    part_numbers: list = field(default_factory=list)  # parts whose records were created or updated
    ground_truth_updated: list = field(default_factory=list)
    examples_rebuilt: int = 0
    examples_flagged: int = 0  # reviewed examples whose ground truth changed: targets kept, flagged

    def summary(self) -> str:
        text = (
            f"{self.rows} rows: {self.created} created, {self.updated} updated, {self.unchanged} unchanged, "
            f"{len(self.invalid)} invalid"
        )
        if self.without_drawing:
            lines = sum(len(v) for v in self.without_drawing.values())
            text += (
                f"; {lines} rows for {len(self.without_drawing)} parts without a drawing (stored, no ground truth yet)"
            )
        return text


def _machine_names() -> dict[str, str]:
    """Every known spelling (lower case) -> the machine's name in the reference table."""
    names = {}
    for machine in Machine.objects.all():
        names[machine.name.strip().lower()] = machine.name
        for alias in machine.aliases or []:
            names[str(alias).strip().lower()] = machine.name
    return names


def _decimal(value: str) -> Decimal | None:
    try:
        number = Decimal(value.strip().replace(",", ".")) if value.strip() else None
    except InvalidOperation:
        return None
    if number is None or not number.is_finite():
        return None
    return number


def _max_length(name: str) -> int:
    return ProductionRecord._meta.get_field(name).max_length


def _too_long(row: dict) -> str:
    """The reason a text field does not fit its column, or "" (PostgreSQL would refuse the whole file)."""
    for name in ("part_number", "order_id", "machine"):
        value = (row.get(name) or "").strip()
        if len(value) > _max_length(name):
            return f"{name} is {len(value):,} characters long (at most {_max_length(name)})"
    return ""


def _parse_row(row: dict, machines: dict[str, str]) -> tuple[dict | None, str]:
    """(clean values, "") or (None, reason)."""
    too_long = _too_long(row)
    if too_long:
        return None, too_long
    part_number = (row.get("part_number") or "").strip()
    if not part_number:
        return None, "missing part_number"
    order_id = (row.get("order_id") or "").strip()
    if not order_id:
        return None, "missing order_id"
    machine_written = " ".join((row.get("machine") or "").split())
    if not machine_written:
        return None, "missing machine"
    operation = (row.get("operation") or "").strip().lower()
    if operation not in ProductionRecord.OPERATIONS:
        return None, (
            f"unknown operation {operation[:40]!r} (expected one of {', '.join(ProductionRecord.OPERATIONS)})"
        )
    pieces_text = (row.get("pieces") or "").strip()
    # isascii + isdecimal: "²" is a digit to str.isdigit() but not a number int() reads.
    if not (pieces_text.isascii() and pieces_text.isdecimal()) or int(pieces_text) < 1:
        return None, f"pieces is not a positive integer ({pieces_text[:40]!r})"
    if int(pieces_text) > _MAX_PIECES:
        return None, f"pieces is out of range ({pieces_text[:40]}; at most {_MAX_PIECES:,})"
    values = {}
    for name in ("machine_time_min_per_piece", "setup_min"):
        number = _decimal(row.get(name) or "")
        if number is None:
            return None, f"non-numeric {name}"
        if number < 0 or number > _MAX_MINUTES:
            return None, f"{name} out of range ({number})"
        values[name] = number.quantize(Decimal("0.001"))
    recorded_text = (row.get("recorded_at") or "").strip()
    recorded_at = None
    if recorded_text:
        try:
            recorded_at = date.fromisoformat(recorded_text)
        except ValueError:
            return None, f"recorded_at is not a date YYYY-MM-DD ({recorded_text[:40]!r})"
    return {
        "part_number": part_number,
        "order_id": order_id,
        "machine": machines.get(machine_written.lower(), machine_written),
        "operation": operation,
        "pieces": int(pieces_text),
        "recorded_at": recorded_at,
        **values,
    }, ""


def _read_text(file=None, text: str | None = None) -> str:
    if text is not None:
        return text
    data = file.read()
    if isinstance(data, str):
        return data
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ProductionCsvInvalid(
            f"The file is not UTF-8 text (byte {exc.start}): save the CSV as UTF-8 and import again."
        ) from exc


def production_records_import(
    *,
    file=None,
    text: str | None = None,
    source_name: str = "",
    update_ground_truth: bool = True,
    progress=None,
    refresh_every_part: bool = False,
) -> ImportReport:
    """Store the valid rows of a production-times CSV; report invalid rows by line; refresh ground truth after.

    `progress(stage, done, total)`, when given, hears every _PROGRESS_ROWS lines and per batch of parts.
    `refresh_every_part` refreshes the ground truth of every part the file names, its records changed or not:
    a retried import whose killed attempt stored the records but not all their parts' ground truth.
    """
    content = _read_text(file, text).lstrip("\ufeff")
    lines_total = max(content.count("\n"), 1)
    first_line = content.split("\n", 1)[0]
    # Spreadsheet exports in many locales use ";" between fields (and a decimal comma, read by _decimal).
    delimiter = ";" if first_line.count(";") > first_line.count(",") else ","
    reader = csv.DictReader(io.StringIO(content, newline=""), delimiter=delimiter)
    header = [h.strip() for h in (reader.fieldnames or [])]
    missing = [c for c in REQUIRED_COLUMNS if c not in header]
    if missing:
        raise ProductionCsvInvalid(
            f"The CSV lacks the column(s) {', '.join(missing)}; expected a header line with "
            f"{', '.join(REQUIRED_COLUMNS + OPTIONAL_COLUMNS)}."
        )
    reader.fieldnames = header
    report = ImportReport(source_name=source_name)
    machines = _machine_names()
    parsed: dict[tuple, tuple[int, dict]] = {}
    source_name = source_name[: _max_length("source_name")]
    report.source_name = source_name
    rows = iter(reader)
    while True:
        try:
            row = next(rows)
        except StopIteration:
            break
        except csv.Error as exc:
            # A field above the csv module's limit (131,072 characters) or a stray quote: this row only.
            report.rows += 1
            # The reader counts a line only once it is parsed: the failing one is the next.
            report.invalid.append(
                {"line": reader.line_num + 1, "reason": f"unreadable CSV row: {exc}", "part_number": ""}
            )
            continue
        line = reader.line_num  # physical line of the row's end: the header is line 1
        if progress is not None and report.rows % _PROGRESS_ROWS == 0:
            progress("reading lines", min(line, lines_total), lines_total)
        if not any((v or "").strip() for v in row.values() if isinstance(v, str)):
            continue  # blank line
        report.rows += 1
        values, reason = _parse_row(row, machines)
        if values is None:
            report.invalid.append(
                {"line": line, "reason": reason, "part_number": (row.get("part_number") or "").strip()[:100]}
            )
            continue
        key = (values["part_number"], values["order_id"], values["machine"], values["operation"])
        if key in parsed:
            report.invalid.append(
                {
                    "line": line,
                    "reason": f"same part, order, machine and operation as line {parsed[key][0]}",
                    "part_number": values["part_number"],
                }
            )
            continue
        parsed[key] = (line, values)
        if values["machine"].lower() not in machines and values["machine"] not in report.unknown_machines:
            report.unknown_machines.append(values["machine"])

    with_drawing = set(
        Drawing.objects.filter(part_number__in={k[0] for k in parsed}).values_list("part_number", flat=True)
    )
    touched = set()
    with transaction.atomic():
        existing = {
            (r.part_number, r.order_id, r.machine, r.operation): r
            for r in ProductionRecord.objects.filter(part_number__in={k[0] for k in parsed})
        }
        new = []
        for key, (line, values) in parsed.items():
            if values["part_number"] not in with_drawing:
                report.without_drawing.setdefault(values["part_number"], []).append(line)
            record = existing.get(key)
            if record is None:
                new.append(ProductionRecord(**values, source_name=source_name))
                touched.add(values["part_number"])
                continue
            changed = [
                name
                for name in ("pieces", "machine_time_min_per_piece", "setup_min", "recorded_at")
                if getattr(record, name) != values[name]
            ]
            if changed:
                for name in changed:
                    setattr(record, name, values[name])
                record.source_name = source_name or record.source_name
                record.save(update_fields=changed + ["source_name"])
                report.updated += 1
                touched.add(values["part_number"])
            else:
                report.unchanged += 1
        ProductionRecord.objects.bulk_create(new, batch_size=500)
        report.created = len(new)
    report.part_numbers = sorted(touched)
    if refresh_every_part:
        touched |= {key[0] for key in parsed}

    if update_ground_truth and touched:
        # In batches of parts (each part's ground truth is its own): the same result, with progress between.
        parts = sorted(touched)
        for start in range(0, len(parts), _PROGRESS_PARTS):
            if progress is not None:
                progress("updating ground truth", start, len(parts))
            changed, rebuild = production_records_changed(part_numbers=parts[start : start + _PROGRESS_PARTS])
            report.ground_truth_updated += changed
            report.examples_rebuilt += len(rebuild.rebuilt)
            report.examples_flagged += len(rebuild.flagged)
    return report


def production_record_update(*, record: ProductionRecord, user=None):
    """Store a record a person added or edited, then bring the ground truth of its part up to date, and of the
    part it belonged to before when the edit moved it (both parts' trimmed means change).

    Returns what `production_records_changed` returns: (parts whose ground truth changed, RebuildReport).
    """
    with transaction.atomic():
        previous = ProductionRecord.objects.filter(pk=record.pk).values_list("part_number", flat=True).first()
        record.save()
        return production_records_changed(part_numbers=sorted({record.part_number, previous} - {None}), user=user)


def production_records_delete(*, records, user=None):
    """Delete these records (a queryset), then recompute the ground truth of their parts.

    Returns what `production_records_changed` returns: (parts whose ground truth changed, RebuildReport).
    """
    with transaction.atomic():
        part_numbers = set(records.values_list("part_number", flat=True))
        records.delete()
        return production_records_changed(part_numbers=sorted(part_numbers), user=user)


def production_records_changed(*, part_numbers, user=None):
    """After records of these parts changed: recompute their ground truth and bring example targets up to it.

    Returns (parts whose ground truth changed, RebuildReport): untouched examples are rebuilt, examples a
    person decided on or edited keep their targets and are flagged for the reviewer's choice.
    """
    from curation.services.examples import RebuildReport, examples_rebuild_targets
    from curation.services.ground_truth import ground_truth_refresh

    changed = ground_truth_refresh(part_numbers=part_numbers)
    rebuild = examples_rebuild_targets(part_numbers=changed, user=user) if changed else RebuildReport()
    return changed, rebuild
