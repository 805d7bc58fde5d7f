"""The history's field-level differences between two targets (curation.target_diff, no database)."""

import json

from curation.target_diff import change_lines, target_diff


def plan(material="1.4301", rows=None, machines=None):
    rows = rows if rows is not None else [("VS20 saw", "saw", 1.1, 12), ("NZX 2000", "turning", 6, 30)]
    return json.dumps(
        {
            "part_number": "GS-1",
            "material": material,
            "machines": machines if machines is not None else [m for m, *_ in rows],
            "operations": [
                {"machine": m, "operation": o, "machine_time_min_per_piece": t, "setup_min": s} for m, o, t, s in rows
            ],
        }
    )


def test_a_changed_time_and_material_read_as_before_and_after():
    after = plan(material="1.4404", rows=[("VS20 saw", "saw", 1.1, 12), ("NZX 2000", "turning", 9, 30)])
    assert target_diff(before=plan(), after=after) == [
        "material: 1.4301 → 1.4404",
        "turning on NZX 2000: time 6 → 9 min/pc",
    ]


def test_setup_change_says_setup_in_minutes():
    after = plan(rows=[("VS20 saw", "saw", 1.1, 15), ("NZX 2000", "turning", 6, 30)])
    assert target_diff(before=plan(), after=after) == ["saw on VS20 saw: setup 12 → 15 min"]


def test_added_and_removed_rows_and_the_machines_list():
    after = plan(rows=[("NZX 2000", "turning", 6, 30), ("DMU 50", "milling", 4.5, 45)])
    assert target_diff(before=plan(), after=after) == [
        "machines: VS20 saw, NZX 2000 → NZX 2000, DMU 50",
        "saw on VS20 saw: removed",
        "milling on DMU 50: added (4.5 min/pc, setup 45 min)",
    ]


def test_same_value_in_another_spelling_is_no_difference():
    before = plan()
    assert target_diff(before=before, after=json.dumps(json.loads(before), indent=2)) == []
    assert change_lines(field="target", before=before, after=before) == ["no difference"]


def test_reordered_operations_say_so():
    rows = [("VS20 saw", "saw", 1.1, 12), ("NZX 2000", "turning", 6, 30)]
    assert target_diff(before=plan(rows=rows), after=plan(rows=rows[::-1], machines=["VS20 saw", "NZX 2000"])) == [
        "operations: order changed"
    ]


def test_other_schemas_compare_by_path_and_text_targets_as_a_whole():
    before = json.dumps({"size": {"length": 10, "width": 4}, "grade": "A", "notes": ["x"]})
    after = json.dumps({"size": {"length": 12, "width": 4}, "notes": ["x", "y"], "extra": True})
    assert target_diff(before=before, after=after) == [
        "size.length: 10 → 12",
        "grade: removed",
        "notes: x → x, y",
        "extra: – → True",
    ]
    assert target_diff(before="Thanks, fixed.", after="Thanks, it is fixed.") == [
        "text: Thanks, fixed. → Thanks, it is fixed."
    ]
    assert target_diff(before="[1, 2]", after="[1, 3]") == ["[2]: 2 → 3"]


def test_status_rows_read_as_before_and_after():
    assert change_lines(field="status", before="pending", after="approved") == ["pending → approved"]
