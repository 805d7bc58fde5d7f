"""Production-record import: report by line, re-import is a no-op, machine aliases, admin upload by role."""

import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from curation.models import Drawing, GroundTruth, Machine, ProductionRecord
from curation.services.production import ProductionCsvInvalid, production_records_import
from tests.factories import make_drawing, make_user

pytestmark = pytest.mark.django_db

HEADER = "part_number,order_id,machine,operation,pieces,machine_time_min_per_piece,setup_min,recorded_at\n"


@pytest.fixture
def corpus_drawings(corpus):
    expected = json.loads((corpus / "ground_truth.json").read_text())
    for part_number in expected["parts"]:
        make_drawing(part_number=part_number, status=Drawing.Status.UPLOADED)
    return expected


def test_corpus_import_reports_invalid_rows_and_parts_without_drawing(corpus, corpus_drawings):
    expected = corpus_drawings["csv"]
    report = production_records_import(text=(corpus / "production_times.csv").read_text(), source_name="corpus.csv")
    assert report.rows == expected["data_rows"]
    assert [(r["line"], r["reason"]) for r in report.invalid] == [
        (r["line"], r["reason"]) for r in expected["invalid_rows"]
    ]
    assert report.without_drawing == expected["parts_without_drawing"]
    assert report.created == expected["data_rows"] - len(expected["invalid_rows"])
    assert ProductionRecord.objects.count() == report.created


def test_reimporting_the_same_file_changes_nothing(corpus, corpus_drawings):
    text = (corpus / "production_times.csv").read_text()
    production_records_import(text=text)
    computed = {g.part_number: g.computed_at for g in GroundTruth.objects.all()}
    again = production_records_import(text=text)
    assert (again.created, again.updated) == (0, 0)
    assert again.unchanged == ProductionRecord.objects.count()
    assert again.ground_truth_updated == []
    assert {g.part_number: g.computed_at for g in GroundTruth.objects.all()} == computed


def test_changed_value_updates_the_record_and_the_ground_truth():
    make_drawing(part_number="U-1", status=Drawing.Status.UPLOADED)
    production_records_import(text=HEADER + "U-1,A1,DMU 50,milling,10,4.00,20,2024-02-01\n")
    report = production_records_import(text=HEADER + "U-1,A1,DMU 50,milling,10,6.00,20,2024-02-01\n")
    assert (report.created, report.updated) == (0, 1)
    assert report.ground_truth_updated == ["U-1"]
    assert GroundTruth.objects.get(part_number="U-1").operations[0]["machine_time_min_per_piece"] == 6.0


def test_machine_alias_is_normalised_to_the_reference_name():
    Machine.objects.create(name="NLX 2500 (2 spindles)", spindles=2, kind="lathe", aliases=["NLX2500", "NLX 2500"])
    production_records_import(
        text=HEADER + "A-1,O1,nlx2500,turning,5,2.5,30,\nA-1,O2,NLX 2500 (2 spindles),turning,5,2.7,30,\n"
    )
    assert set(ProductionRecord.objects.values_list("machine", flat=True)) == {"NLX 2500 (2 spindles)"}


def test_each_bad_row_gets_its_line_and_a_reason_the_good_ones_are_kept():
    text = HEADER + (
        "B-1,O1,DMU 50,milling,10,1.5,20,2024-01-01\n"
        "B-1,O2,DMU 50,grinding,10,1.5,20,2024-01-01\n"
        "B-1,O3,DMU 50,milling,ten,1.5,20,2024-01-01\n"
        "B-1,O4,DMU 50,milling,10,1.5,20,01/02/2024\n"
        "B-1,O1,DMU 50,milling,10,1.6,20,2024-01-01\n"
    )
    report = production_records_import(text=text)
    assert [r["line"] for r in report.invalid] == [3, 4, 5, 6]
    reasons = " | ".join(r["reason"] for r in report.invalid)
    assert "unknown operation 'grinding'" in reasons and "pieces" in reasons and "recorded_at" in reasons
    assert "line 2" in report.invalid[-1]["reason"]
    assert report.created == 1


def test_missing_column_refuses_the_whole_file():
    with pytest.raises(ProductionCsvInvalid, match="setup_min"):
        production_records_import(text="part_number,order_id,machine,operation,pieces,machine_time_min_per_piece\n")
    assert not ProductionRecord.objects.exists()


def admin_import(client, upload, *, run_worker, capture):
    """Post the CSV through the admin page, let a real burst worker import it, and read the page it went to."""
    with capture(execute=True):
        response = client.post(reverse("admin:curation_productionrecord_import"), {"file": upload})
    assert response.status_code == 302, response.content.decode()[:500]
    status_url = response["Location"]
    waiting = client.get(status_url).content.decode()
    assert "data-live-url" in waiting and "Queued" in waiting  # the page polls until the worker is done
    run_worker("default")
    return status_url, client.get(status_url).content.decode()


def test_admin_upload_shows_the_report_for_a_manager(
    client, corpus, corpus_drawings, run_worker, django_capture_on_commit_callbacks
):
    client.force_login(make_user("Manager"))
    upload = SimpleUploadedFile("production_times.csv", (corpus / "production_times.csv").read_bytes(), "text/csv")
    _, page = admin_import(client, upload, run_worker=run_worker, capture=django_capture_on_commit_callbacks)
    assert "non-numeric machine_time_min_per_piece" in page and "<td>43</td>" in page and "<td>154</td>" in page
    assert "JR 809117" in page and "data-live-url" not in page  # done: the page stops polling
    assert ProductionRecord.objects.count() == corpus_drawings["csv"]["data_rows"] - 2


def test_admin_upload_explains_a_broken_file(client, run_worker, django_capture_on_commit_callbacks):
    client.force_login(make_user("Manager"))
    upload = SimpleUploadedFile("x.csv", b"\xff\xfe\x00garbage", "text/csv")
    _, page = admin_import(client, upload, run_worker=run_worker, capture=django_capture_on_commit_callbacks)
    assert "Not imported" in page and "not UTF-8" in page


def test_admin_upload_refuses_a_file_over_the_size_limit(client, settings):
    settings.UPLOAD_MAX_BYTES = 100
    client.force_login(make_user("Manager"))
    upload = SimpleUploadedFile("big.csv", (HEADER + "R-1,O1,DMU 50,milling,10,1.5,20,\n" * 5).encode(), "text/csv")
    response = client.post(reverse("admin:curation_productionrecord_import"), {"file": upload})
    assert response.status_code == 200 and "uploads are limited to" in response.content.decode()
    assert not ProductionRecord.objects.exists()


def test_admin_upload_is_refused_to_a_reviewer(client):
    client.force_login(make_user("Reviewer"))
    url = reverse("admin:curation_productionrecord_import")
    upload = SimpleUploadedFile("p.csv", (HEADER + "R-1,O1,DMU 50,milling,10,1.5,20,\n").encode(), "text/csv")
    assert client.post(url, {"file": upload}).status_code == 403
    assert not ProductionRecord.objects.exists()


def test_command_lists_invalid_lines_and_refuses_a_missing_file(corpus, corpus_drawings, capsys, tmp_path):
    from django.core.management import CommandError, call_command

    call_command("import_production_times", str(corpus / "production_times.csv"), "--sync")
    out = capsys.readouterr().out
    assert "line 43: non-numeric machine_time_min_per_piece" in out and "line 154: missing part_number" in out
    assert "PDM-279950: no drawing yet (lines 282)" in out
    with pytest.raises(CommandError, match="No such file"):
        call_command("import_production_times", str(tmp_path / "nope.csv"))


def test_semicolon_export_with_decimal_commas_is_read():
    make_drawing(part_number="SC-1", status=Drawing.Status.UPLOADED)
    text = HEADER.replace(",", ";") + "SC-1;O1;DMU 50;milling;10;4,25;20;2024-02-01\n"
    report = production_records_import(text=text)
    assert report.created == 1 and not report.invalid
    assert GroundTruth.objects.get(part_number="SC-1").operations[0]["machine_time_min_per_piece"] == 4.25


def test_editing_a_record_in_the_admin_recomputes_the_ground_truth(client):
    from django.urls import reverse

    make_drawing(part_number="ED-1", status=Drawing.Status.UPLOADED)
    production_records_import(text=HEADER + "ED-1,O1,DMU 50,milling,10,4.00,20,2024-02-01\n")
    record = ProductionRecord.objects.get()
    client.force_login(make_user("Manager"))
    response = client.post(
        reverse("admin:curation_productionrecord_change", args=[record.pk]),
        {
            "part_number": "ED-1",
            "order_id": "O1",
            "machine": "DMU 50",
            "operation": "milling",
            "pieces": 10,
            "machine_time_min_per_piece": "5.50",
            "setup_min": "20",
            "recorded_at": "2024-02-01",
            "source_name": "",
        },
    )
    assert response.status_code == 302
    assert GroundTruth.objects.get(part_number="ED-1").operations[0]["machine_time_min_per_piece"] == 5.5


def test_a_record_moved_to_another_part_recomputes_both_parts_and_a_delete_recomputes_its_part():
    from curation.services.production import production_record_update, production_records_delete

    for part_number in ("MV-1", "MV-2"):
        make_drawing(part_number=part_number, status=Drawing.Status.UPLOADED)
    production_records_import(
        text=HEADER + "MV-1,O1,DMU 50,milling,10,4.00,20,2024-02-01\n"
        "MV-1,O2,DMU 50,milling,10,6.00,20,2024-02-02\n"
        "MV-2,O3,DMU 50,milling,10,9.00,20,2024-02-03\n"
    )
    record = ProductionRecord.objects.get(order_id="O2")
    record.part_number = "MV-2"
    changed, _ = production_record_update(record=record)
    assert changed == ["MV-1", "MV-2"]
    assert GroundTruth.objects.get(part_number="MV-1").operations[0]["machine_time_min_per_piece"] == 4.0
    assert GroundTruth.objects.get(part_number="MV-2").record_count == 2

    changed, _ = production_records_delete(records=ProductionRecord.objects.filter(order_id="O3"))
    assert changed == ["MV-2"] and ProductionRecord.objects.filter(part_number="MV-2").count() == 1
    assert GroundTruth.objects.get(part_number="MV-2").operations[0]["machine_time_min_per_piece"] == 6.0


def test_admin_import_runs_in_a_worker_keeps_good_rows_and_reports_the_bad_line(
    client, run_worker, django_capture_on_commit_callbacks
):
    import django_rq

    from curation.models import ProductionImport

    client.force_login(make_user("Manager"))
    content = (
        HEADER
        + "R-1,O1,DMU 50,milling,10,1.5,20,\n"
        + "R-2,O2,DMU 50,milling,ten,1.5,20,\n"
        + "R-3,O3,DMU 50,turning,4,2.0,15,2024-05-01\n"
    ).encode()
    url = reverse("admin:curation_productionrecord_import")
    for _ in range(2):  # a second click with the same file queues no second import
        with django_capture_on_commit_callbacks(execute=True):
            response = client.post(url, {"file": SimpleUploadedFile("shop.csv", content, "text/csv")})
    job = ProductionImport.objects.get()
    assert response["Location"] == reverse("admin:curation_productionrecord_import_status", args=[job.pk])
    assert django_rq.get_queue("default").count == 1 and not ProductionRecord.objects.exists()
    assert "already being imported" in client.get(response["Location"]).content.decode()
    # The worker reads the file from storage, not from the web request's temp file.
    assert job.file.storage.exists(job.file.name) and job.file.read() == content

    run_worker("default")
    page = client.get(response["Location"]).content.decode()
    assert "3 rows: 2 created" in page and "1 invalid" in page
    assert "<td>3</td><td>R-2</td><td>pieces is not a positive integer" in page  # the bad line, by number
    assert sorted(ProductionRecord.objects.values_list("part_number", flat=True)) == ["R-1", "R-3"]
    live = client.get(reverse("admin:curation_productionrecord_import_live", args=[job.pk])).json()
    assert live["status"] == "done" and live["active"] is False and live["bars"]["progress"] == 100

    from curation.services.production_imports import production_import_run

    assert production_import_run(import_id=job.pk) is None  # a re-run of the job finds it done
    assert ProductionRecord.objects.count() == 2


def test_import_status_and_its_live_json_are_refused_to_a_reviewer(client):
    from django.core.files.base import ContentFile

    from curation.models import ProductionImport

    job = ProductionImport(source_name="p.csv", sha256="0" * 64)
    job.file.save("p.csv", ContentFile(b"x"), save=True)
    client.force_login(make_user("Reviewer"))
    assert client.get(reverse("admin:curation_productionrecord_import_status", args=[job.pk])).status_code == 403
    live = client.get(reverse("admin:curation_productionrecord_import_live", args=[job.pk]))
    assert live.status_code == 403 and "error" in live.json()
