"""Production CSVs with hostile or odd values: each bad row is reported by line, the good rows are kept, never a 500."""

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from curation.models import ProductionRecord
from curation.services.production import production_records_import
from tests.factories import make_user

pytestmark = pytest.mark.django_db

HEADER = "part_number,order_id,machine,operation,pieces,machine_time_min_per_piece,setup_min,recorded_at\n"
HOSTILE = HEADER + (
    "H-1,O1,DMU 50,milling,10,1.5,20,2024-01-01\n"  # line 2: good
    "H-1,O2,DMU 50,milling,²,1.5,20,2024-01-01\n"  # line 3: a superscript digit
    "H-1,O3,DMU 50,milling,100000000000000000000,1.5,20,\n"  # line 4: 10^20 pieces
    f"H-1,{'O' * 51},DMU 50,milling,10,1.5,20,\n"  # line 5: order_id over its 50 characters
    f"{'P' * 101},O5,DMU 50,milling,10,1.5,20,\n"  # line 6: part_number over 100
    f"H-1,O6,{'M' * 200_000},milling,10,1.5,20,\n"  # line 7: a field over the csv limit (131,072)
    "H-1,O7,DMU 50,turning,4,2.5,10,2024-01-02\n"  # line 8: good
)


def test_hostile_rows_are_reported_by_line_and_the_good_rows_kept():
    report = production_records_import(text=HOSTILE, source_name="s" * 400)
    reasons = {r["line"]: r["reason"] for r in report.invalid}
    assert sorted(reasons) == [3, 4, 5, 6, 7], reasons
    assert "pieces is not a positive integer" in reasons[3]
    assert "pieces is out of range" in reasons[4]
    assert "order_id is 51 characters long (at most 50)" in reasons[5]
    assert "part_number is 101 characters long (at most 100)" in reasons[6]
    assert "unreadable CSV row" in reasons[7] and "field larger than field limit" in reasons[7]
    assert report.created == 2
    assert sorted(ProductionRecord.objects.values_list("order_id", flat=True)) == ["O1", "O7"]
    assert len(ProductionRecord.objects.first().source_name) == 255


def test_admin_upload_of_hostile_rows_shows_the_report(client, roles, run_worker, django_capture_on_commit_callbacks):
    from tests.curation.test_production import admin_import

    client.force_login(make_user("Manager"))
    upload = SimpleUploadedFile("hostile.csv", HOSTILE.encode(), "text/csv")
    _, page = admin_import(client, upload, run_worker=run_worker, capture=django_capture_on_commit_callbacks)
    assert "pieces is out of range" in page and "field larger than field limit" in page
    assert ProductionRecord.objects.count() == 2
