"""Live accuracy: an estimate made before its part was produced is scored once the shop's records arrive, scored
again when they change, and never keeps a score whose ground truth is gone (service, periodic job, command)."""

import django_rq
import pytest
from django.core.management import call_command
from rq.registry import ScheduledJobRegistry

from curation.models import GroundTruth, ProductionRecord
from curation.services.ground_truth import ground_truth_target
from curation.services.production import production_records_delete, production_records_import
from curation.services.tasks import task_create_from_preset
from finetune import metrics
from finetune.models import Estimate
from finetune.services.estimate_scores import estimate_record, estimates_score_stale
from gestima.periodic import PERIODIC_JOBS, periodic_run
from tests.factories import make_drawing, technology_target

pytestmark = pytest.mark.django_db
HEADER = "part_number,order_id,machine,operation,pieces,machine_time_min_per_piece,setup_min,recorded_at\n"
TIME = "operations[].machine_time_min_per_piece"
SETUP = "operations[].setup_min"


def _records(part_number, *, turning="8.00", setup="40"):
    return HEADER + (
        f"{part_number},O1,VS20 saw,saw,10,1.10,12,2024-01-01\n"
        f"{part_number},O1,NZX 2000,turning,10,{turning},{setup},2024-01-02\n"
        f"{part_number},O2,NZX 2000,turning,10,{turning},{setup},2024-03-02\n"
    )


@pytest.fixture
def task():
    return task_create_from_preset(slug="technology_builder")


def _estimate(task, part_number, *, minutes=10.0, setup=30.0, model_name="ft:gpt-4o-mini-2024-07-18:shop::live"):
    """An estimate as estimate_create stores it, made before the shop produced the part: the model planned
    turning on the NZX 2000 and milling on the DMU 50, no saw."""
    return Estimate.objects.create(
        task=task,
        drawing=make_drawing(part_number=part_number),
        model_name=model_name,
        provider="openai_ft",
        output=technology_target(part_number, minutes=minutes, setup=setup),
    )


def _by_key(errors):
    return {tuple(e["key"]): e for e in errors}


def test_an_estimate_is_scored_when_production_records_arrive_later(task):
    estimate = _estimate(task, "LIVE-1")
    assert estimates_score_stale().scored == 0  # no production yet: nothing to score against
    estimate.refresh_from_db()
    assert estimate.live_score is None and estimate.scored_at is None

    production_records_import(text=_records("LIVE-1"))
    report = estimates_score_stale()
    assert report.scored == 1
    estimate.refresh_from_db()
    truth = GroundTruth.objects.get(part_number="LIVE-1")
    assert estimate.scored_ground_truth_at == truth.computed_at
    times = _by_key(estimate.live_errors[TIME])
    # Per machine and operation, as the eval's by-key breakdown: the saw the shop used and the model left out
    # is a 100 % error; turning 10 min against 8 measured is 25 % over; the model's milling has no measure.
    assert times[("VS20 saw", "saw")]["ape"] == 1.0 and times[("VS20 saw", "saw")]["predicted"] is None
    assert times[("NZX 2000", "turning")]["actual"] == 8.0
    assert times[("NZX 2000", "turning")]["ape"] == pytest.approx(0.25)
    assert ("DMU 50", "milling") not in times
    setups = _by_key(estimate.live_errors[SETUP])
    assert setups[("NZX 2000", "turning")]["ape"] == pytest.approx(0.25)  # 30 against 40
    # The overall score and the MAPE are the eval's own numbers for this one estimate.
    record = estimate_record(estimate=estimate, target=ground_truth_target(truth))
    eval_view = metrics.run_metrics([record], task.metric_spec, n_boot=0)
    assert estimate.live_score == pytest.approx((1.0 + 0.25 + 1.0 + 0.25) / 4)
    assert metrics.pooled_value([estimate.live_ape_sum], [estimate.live_ape_n]) == pytest.approx(
        eval_view["numeric"][TIME]["mape"]["value"]
    )
    assert estimate.live_ape_n == 2

    scored_at = estimate.scored_at
    assert estimates_score_stale().scored == 0  # idempotent: nothing changed, nothing scored again
    estimate.refresh_from_db()
    assert estimate.scored_at == scored_at


def test_changed_ground_truth_scores_the_estimate_again(task):
    estimate = _estimate(task, "LIVE-2")
    production_records_import(text=_records("LIVE-2", turning="8.00"))
    estimates_score_stale()
    estimate.refresh_from_db()
    first = _by_key(estimate.live_errors[TIME])[("NZX 2000", "turning")]["ape"]

    # More records: the trimmed mean of turning moves to 9.00 and the ground truth's computed_at with it.
    production_records_import(
        text=HEADER + "".join(f"LIVE-2,O{i},NZX 2000,turning,10,10.00,40,2024-05-0{i}\n" for i in range(3, 5))
    )
    truth = GroundTruth.objects.get(part_number="LIVE-2")
    assert estimates_score_stale().scored == 1
    estimate.refresh_from_db()
    turning = _by_key(estimate.live_errors[TIME])[("NZX 2000", "turning")]
    assert turning["actual"] == 9.0 and turning["ape"] == pytest.approx(1 / 9)
    assert turning["ape"] != first and estimate.scored_ground_truth_at == truth.computed_at


def test_no_ground_truth_means_no_score_and_a_vanished_one_clears_it(task):
    unmeasured = _estimate(task, "LIVE-3")
    measured = _estimate(task, "LIVE-4")
    production_records_import(text=_records("LIVE-4"))
    assert estimates_score_stale().scored == 1
    unmeasured.refresh_from_db()
    assert unmeasured.live_score is None and unmeasured.live_errors == {}

    production_records_delete(records=ProductionRecord.objects.filter(part_number="LIVE-4"))
    report = estimates_score_stale()
    assert (report.scored, report.cleared) == (0, 1)
    measured.refresh_from_db()
    assert measured.live_score is None and measured.scored_ground_truth_at is None and measured.live_ape_n == 0


def test_the_periodic_job_scores_in_a_real_worker_and_schedules_its_next_run(task, run_worker):
    assert "score-estimates" in PERIODIC_JOBS
    estimates = [_estimate(task, f"LIVE-P{i}") for i in range(5)]
    production_records_import(
        text="".join(_records(f"LIVE-P{i}").removeprefix(HEADER) if i else _records("LIVE-P0") for i in range(5))
    )
    queue = django_rq.get_queue(PERIODIC_JOBS["score-estimates"][2])
    queue.enqueue(periodic_run, "score-estimates")
    run_worker(queue.name)
    assert Estimate.objects.filter(pk__in=[e.pk for e in estimates], live_score__isnull=False).count() == 5
    assert "periodic-score-estimates" in ScheduledJobRegistry(queue=queue).get_job_ids()
    stamps = dict(Estimate.objects.values_list("pk", "scored_at"))

    queue.enqueue(periodic_run, "score-estimates")  # a second run finds nothing stale
    run_worker(queue.name)
    assert dict(Estimate.objects.values_list("pk", "scored_at")) == stamps


def test_the_command_scores_in_batches_and_says_how_many(task, capsys):
    for i in range(5):
        _estimate(task, f"LIVE-C{i}")
        production_records_import(text=_records(f"LIVE-C{i}"))
    call_command("score_estimates", "--batch", "2", "--limit", "3")
    assert "3 estimate(s) scored" in capsys.readouterr().out
    call_command("score_estimates", "--batch", "2")
    assert "2 estimate(s) scored" in capsys.readouterr().out
    call_command("score_estimates")
    assert "0 estimate(s) scored" in capsys.readouterr().out
    assert Estimate.objects.filter(live_score__isnull=True).count() == 0
