"""Ground truth: the trimmed mean by hand and against every corpus part; high CV flagged; material from the drawing."""

import json
from decimal import Decimal

import pytest
from django.core.files.base import ContentFile

from curation.models import Drawing, GroundTruth, ProductionRecord
from curation.services.drawings import drawing_render
from curation.services.ground_truth import (
    ground_truth_compute,
    ground_truth_material_set,
    ground_truth_target,
    trimmed_mean,
)
from curation.services.production import production_records_import
from tests.factories import make_drawing


def test_trimmed_mean_drops_floor_tenth_at_each_end():
    # n = 11 -> k = 1: 1 and 100 go, the mean of 2..10 is 54 / 9 = 6.
    assert trimmed_mean([10, 1, 2, 3, 4, 5, 6, 7, 8, 9, 100], fraction=0.1) == Decimal("6.00")
    # n = 20 -> k = 2: drop 0, 0 and 50, 50; the rest are 16 values of 3 -> 3.00.
    assert trimmed_mean([0, 0] + [3] * 16 + [50, 50], fraction=0.1) == Decimal("3.00")


def test_trimmed_mean_keeps_everything_below_ten_values():
    assert trimmed_mean([1, 2, 30], fraction=0.1) == Decimal("11.00")


def test_trimmed_mean_rounds_half_up_exactly():
    # (1.00 + 1.01) / 2 = 1.005 -> 1.01 (a float mean gives 1.0049999... -> 1.00).
    assert trimmed_mean(["1.00", "1.01"], fraction=0.1) == Decimal("1.01")
    assert trimmed_mean(["2.344", "2.345"], fraction=0.1) == Decimal("2.34")


def test_trimmed_mean_of_nothing_is_an_error():
    with pytest.raises(ValueError):
        trimmed_mean([], fraction=0.1)


@pytest.mark.django_db
def test_every_corpus_part_matches_its_expected_target(corpus):
    expected = json.loads((corpus / "ground_truth.json").read_text())["parts"]
    for part_number in expected:
        make_drawing(part_number=part_number, status=Drawing.Status.UPLOADED)
    production_records_import(text=(corpus / "production_times.csv").read_text(), source_name="corpus")
    assert GroundTruth.objects.count() == len(expected)
    for part_number, part in expected.items():
        target = ground_truth_target(GroundTruth.objects.get(part_number=part_number))
        want = part["target"]
        assert target["machines"] == want["machines"], part_number
        assert [(o["machine"], o["operation"]) for o in target["operations"]] == [
            (o["machine"], o["operation"]) for o in want["operations"]
        ], part_number
        for got, exp in zip(target["operations"], want["operations"]):
            assert abs(got["machine_time_min_per_piece"] - exp["machine_time_min_per_piece"]) <= 0.01, part_number
            assert abs(got["setup_min"] - exp["setup_min"]) <= 0.01, part_number


@pytest.mark.django_db
def test_parts_without_drawing_get_no_ground_truth(corpus):
    expected = json.loads((corpus / "ground_truth.json").read_text())
    for part_number in expected["parts"]:
        make_drawing(part_number=part_number, status=Drawing.Status.UPLOADED)
    production_records_import(text=(corpus / "production_times.csv").read_text())
    for part_number in expected["csv"]["parts_without_drawing"]:
        assert ProductionRecord.objects.filter(part_number=part_number).exists()
        assert not GroundTruth.objects.filter(part_number=part_number).exists()


def _csv(rows):
    header = "part_number,order_id,machine,operation,pieces,machine_time_min_per_piece,setup_min,recorded_at\n"
    return header + "".join(
        f"{pn},{order},{m},{op},10,{t},{s},2024-01-0{i % 9 + 1}\n" for i, (pn, order, m, op, t, s) in enumerate(rows)
    )


@pytest.mark.django_db
def test_high_spread_is_flagged_not_dropped():
    make_drawing(part_number="CV-1", status=Drawing.Status.UPLOADED)
    make_drawing(part_number="CV-2", status=Drawing.Status.UPLOADED)
    production_records_import(
        text=_csv(
            [
                ("CV-1", "A1", "NZX 2000", "turning", "2", "30"),
                ("CV-1", "A2", "NZX 2000", "turning", "9", "30"),
                ("CV-1", "A3", "NZX 2000", "turning", "4", "30"),
                ("CV-2", "B1", "NZX 2000", "turning", "5.0", "30"),
                ("CV-2", "B2", "NZX 2000", "turning", "5.2", "31"),
            ]
        )
    )
    spread = GroundTruth.objects.get(part_number="CV-1")
    steady = GroundTruth.objects.get(part_number="CV-2")
    assert spread.high_cv and spread.max_cv > 0.35
    assert spread.operations[0]["machine_time_min_per_piece"] == 5.0 and spread.operations[0]["n"] == 3
    assert not steady.high_cv and steady.max_cv < 0.1


@pytest.mark.django_db
def test_material_is_read_from_the_vector_drawing_and_kept_when_set_by_hand(corpus):
    parts = json.loads((corpus / "ground_truth.json").read_text())["parts"]
    vector = next(pn for pn, p in parts.items() if not p["scanned"] and p["pages"] == 1)
    scanned = next(pn for pn, p in parts.items() if p["scanned"])
    drawings = []
    for pn in (vector, scanned):
        data = (corpus / parts[pn]["file"]).read_bytes()
        drawing = Drawing(original_name=parts[pn]["file"], sha256=pn, part_number=pn, size_bytes=len(data))
        drawing.file.save(parts[pn]["file"], ContentFile(data), save=True)
        drawings.append(drawing)
    production_records_import(
        text=_csv([(vector, "O1", "DMU 50", "milling", "3", "20"), (scanned, "O2", "DMU 50", "milling", "3", "20")])
    )
    assert GroundTruth.objects.get(part_number=vector).material == ""  # not rendered yet: title block unread
    for drawing in drawings:
        drawing_render(drawing=drawing)  # reads the title block and recomputes the part's ground truth
    assert GroundTruth.objects.get(part_number=vector).material == parts[vector]["target"]["material"]
    from_scan = GroundTruth.objects.get(part_number=scanned)
    assert from_scan.material == ""  # no text layer: a person enters it
    ground_truth_material_set(ground_truth=from_scan, material=parts[scanned]["target"]["material"])
    assert ground_truth_compute(part_number=scanned).material == parts[scanned]["target"]["material"]


@pytest.mark.django_db
def test_selector_gives_the_table_the_screens_show():
    from curation.selectors import ground_truth_for_part

    make_drawing(part_number="SEL-1", status=Drawing.Status.UPLOADED)
    production_records_import(
        text=_csv([("SEL-1", "A1", "DMU 50", "milling", "3", "20"), ("SEL-1", "A1", "VS20 saw", "saw", "1", "5")])
    )
    table = ground_truth_for_part("SEL-1")
    assert [(row["operation"], row["machine"], row["n"]) for row in table["operations"]] == [
        ("saw", "VS20 saw", 1),
        ("milling", "DMU 50", 1),
    ]
    assert ground_truth_for_part("NOPE") is None and ground_truth_for_part("") is None


def test_material_of_every_vector_corpus_drawing_is_read_as_printed(corpus, tmp_path):
    from curation.rendering import RenderLimits, render_pdf

    limits = RenderLimits(max_side_px=256, dpi_cap=72, max_pixels=256 * 256)
    parts = json.loads((corpus / "ground_truth.json").read_text())["parts"]
    for part_number, part in parts.items():
        result = render_pdf(str(corpus / part["file"]), out_dir=str(tmp_path), limits=limits)
        assert result.material == ("" if part["scanned"] else part["target"]["material"]), part_number
