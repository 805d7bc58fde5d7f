"""Demo production records and reference tables, generated in code (deterministic per part number)."""

import hashlib
import random
from datetime import date, timedelta

from curation.services.production import REQUIRED_COLUMNS

MACHINES = [
    # (name as records and targets write it, spindles, kind, other spellings seen in exports)
    ("VS20 saw", 1, "saw", ["VS20", "VS 20", "Saw VS20"]),
    ("NLX 2500 (2 spindles)", 2, "lathe", ["NLX 2500", "NLX2500", "DMG MORI NLX 2500"]),
    ("NZX 2000", 1, "lathe", ["NZX2000", "DMG MORI NZX 2000"]),
    ("MAZAK QTN 200", 1, "lathe", ["QTN 200", "Mazak QTN200"]),
    ("DMU 50", 1, "mill", ["DMU50", "DMG MORI DMU 50"]),
]

MATERIAL_ALIASES = [
    # written on drawings -> norm (material numbers and the common names shops use for them)
    ("11SMnPb30", "1.0718"),
    ("C45", "1.0503"),
    ("C45E+C", "1.1191"),
    ("42CrMo4", "1.7225"),
    ("42CrMo4+QT", "1.7225"),
    ("16MnCr5", "1.7131"),
    ("1.4301", "1.4301"),
    ("X5CrNi18-10 (1.4301)", "1.4301"),
    ("X5CrNi18-10", "1.4301"),
    ("1.4404", "1.4404"),
    ("S235JR", "1.0038"),
    ("S355J2+N", "1.0577"),
    ("EN AW-6082 T6", "EN AW-6082"),
    ("EN AW-6082 T651", "EN AW-6082"),
    ("AlMgSi1", "EN AW-6082"),
    ("EN AW-7075 T651", "EN AW-7075"),
]

# Materials given to demo parts whose drawing has no readable title block (a scan).
DEMO_MATERIALS = ["C45", "42CrMo4", "1.4301", "EN AW-6082 T6", "S235JR", "11SMnPb30"]

_LATHES = ["NLX 2500 (2 spindles)", "NZX 2000", "MAZAK QTN 200"]
_SETUP = {"saw": 12, "turning": 50, "milling": 70, "deburring": 10}


def _rng(part_number: str) -> random.Random:
    return random.Random(int(hashlib.sha256(part_number.encode()).hexdigest()[:12], 16))


def demo_material(part_number: str) -> str:
    return _rng(part_number).choice(DEMO_MATERIALS)


def demo_routing(part_number: str) -> list[tuple[str, str, float]]:
    """(machine, operation, typical minutes per piece) for a demo part."""
    rng = _rng(part_number + "/routing")
    lathe = rng.choice(_LATHES)
    routing = [("VS20 saw", "saw", rng.uniform(0.4, 2.0)), (lathe, "turning", rng.uniform(2.5, 14.0))]
    if rng.random() < 0.6:
        routing.append(("DMU 50", "milling", rng.uniform(2.0, 9.0)))
    routing.append((lathe if rng.random() < 0.5 else "DMU 50", "deburring", rng.uniform(0.5, 2.5)))
    return routing


def demo_production_rows(part_numbers) -> list[dict]:
    """A few records per part and operation with some spread (and an occasional outlier), as CSV rows."""
    rows = []
    for part_number in sorted(set(part_numbers)):
        rng = _rng(part_number + "/records")
        prefix = hashlib.sha256(part_number.encode()).hexdigest()[:4].upper()
        orders = [f"DEMO-{prefix}-{i + 1:02d}" for i in range(rng.randint(4, 12))]
        start = date(2023, 1, 9)
        for index, order in enumerate(orders):
            day = start + timedelta(days=rng.randint(0, 600))
            pieces = rng.choice([5, 10, 20, 25, 50, 100])
            for machine, operation, minutes in demo_routing(part_number):
                if operation != "turning" and index % 3:
                    continue  # secondary operations are booked on some orders only
                value = minutes * rng.lognormvariate(0, 0.08) * (1 + 0.6 / pieces)
                if rng.random() < 0.05:
                    value *= rng.choice([3.0, 0.2])  # a booking error, as real exports have them
                setup = _SETUP[operation] * rng.lognormvariate(0, 0.15)
                rows.append(
                    {
                        "part_number": part_number,
                        "order_id": order,
                        "machine": machine,
                        "operation": operation,
                        "pieces": str(pieces),
                        "machine_time_min_per_piece": f"{value:.2f}",
                        "setup_min": f"{round(setup * 2) / 2:g}",
                        "recorded_at": day.isoformat(),
                    }
                )
    return rows


def demo_production_csv(part_numbers) -> str:
    columns = REQUIRED_COLUMNS + ["recorded_at"]
    lines = [",".join(columns)]
    for row in demo_production_rows(part_numbers):
        lines.append(",".join(f'"{row[c]}"' if "," in row[c] else row[c] for c in columns))
    return "\n".join(lines) + "\n"
