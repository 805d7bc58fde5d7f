"""The dashboard's live accuracy: a Manager reads each model's live MAPE by month beside its eval MAPE; a
Reviewer does not get the section (nor its JSON)."""

import datetime

import pytest
from django.utils import timezone

from curation.services.production import production_records_import
from finetune.models import Estimate
from finetune.services.estimate_scores import estimates_score_stale
from tests.factories import make_drawing, technology_target
from tests.gestima.dashkit import make_house
from tests.gestima.test_dashboard import _chart, _index, _section, _text

pytestmark = pytest.mark.django_db
HEADER = "part_number,order_id,machine,operation,pieces,machine_time_min_per_piece,setup_min,recorded_at\n"


def make_scored_estimates(house: dict) -> dict:
    """Three estimates of the house's active model, scored against turning measured at 8 min: this month 10 and
    6 min (25 % off each), last month 9 min (12.5 % off). Returns the months' labels."""
    model = house["succeeded"].fine_tuned_model
    last_month = timezone.localtime().replace(day=1) - datetime.timedelta(days=1)
    for part, minutes, when in (("LA-1", 10.0, None), ("LA-2", 6.0, None), ("LA-3", 9.0, last_month)):
        estimate = Estimate.objects.create(
            task=house["task"],
            drawing=make_drawing(part_number=part),
            model_name=model,
            provider="openai_ft",
            output=technology_target(part, minutes=minutes),
        )
        if when is not None:
            Estimate.objects.filter(pk=estimate.pk).update(created_at=when)
        production_records_import(text=HEADER + f"{part},O1,NZX 2000,turning,10,8.00,40,2024-01-02\n")
    assert estimates_score_stale().scored == 3
    return {"this": f"{timezone.localtime():%Y-%m}", "last": f"{last_month:%Y-%m}", "model": model}


def test_a_manager_reads_live_mape_by_month_beside_the_eval_mape(client):
    house = make_house()
    months = make_scored_estimates(house)
    html = _index(client, house["mara"])

    section = _section(html, "dash-live-accuracy")
    row = _text(section)
    assert months["model"] in row and "technology_builder" in row
    # Over the window: (0.25 + 0.25 + 0.125) / 3 of the measured time; the latest month alone: 25 %.
    assert "20.8 % 25.0 % 12.3 % (95 % CI 10.1 %–14.6 %) +8.5 points" in row
    chart = _chart(html, "live-mape-chart")
    assert chart["kind"] == "line" and chart["labels"][-1] == months["this"] and chart["labels"][-2] == months["last"]
    series = {s["name"]: s["values"] for s in chart["series"]}
    live, evaluated = series[f"{months['model']}: live"], series[f"{months['model']}: eval"]
    assert live[-1] == 25.0 and live[-2] == 12.5 and live[0] is None
    assert set(evaluated) == {12.3}
    # The table under the chart: percentages have no total, an empty month is an empty cell.
    assert "Total" not in _section(html, "dash-live-accuracy").split("live-mape-chart", 1)[1].split("</table>")[0]
    assert "<td></td>" in section  # a month without scored estimates: an empty cell, as in every chart table


def test_a_reviewer_gets_no_live_accuracy_section(client):
    house = make_house()
    make_scored_estimates(house)
    html = _index(client, house["rita"])
    assert 'id="dash-live-accuracy"' not in html and "live-mape-chart" not in html


def test_before_any_score_the_section_says_how_scores_arrive(client):
    house = make_house()
    section = _text(_section(_index(client, house["mara"]), "dash-live-accuracy"))
    assert "No estimate has been scored yet" in section and "score_estimates" in section
