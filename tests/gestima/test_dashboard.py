"""The admin index as a dashboard: what each role reads there, the figures, the links, and a flat query count."""

import datetime
import json
import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from curation.models import Example, ExampleChange
from tests.factories import make_user
from gestima.dashboard import WORK_LIMIT
from tests.gestima.dashkit import decide, grow_house, make_house

pytestmark = pytest.mark.django_db


def _text(html: str) -> str:
    """What a person reads: tags gone, spaces collapsed, none inside brackets or before punctuation."""
    text = " ".join(re.sub(r"<[^>]+>", " ", html).split())
    return re.sub(r"\s+([).,;:])", r"\1", re.sub(r"\(\s+", "(", text))


def _section(html: str, section_id: str) -> str:
    match = re.search(rf'<section[^>]*id="{section_id}".*?</section>', html, re.S)
    return match.group(0) if match else ""


def _chart(html: str, chart_id: str) -> dict:
    match = re.search(rf'<script id="{chart_id}-data" type="application/json">(.*?)</script>', html, re.S)
    return json.loads(match.group(1)) if match else {}


def _index(client, user) -> str:
    client.force_login(user)
    response = client.get(reverse("admin:index"))
    assert response.status_code == 200
    return response.content.decode()


def test_a_reviewer_reads_the_pipeline_and_the_review_queue_but_no_money(client):
    house = make_house()
    html = _index(client, house["rita"])

    pipeline = _text(_section(html, "dash-pipeline"))
    assert "Failed 2" in pipeline and "Rendering 1" in pipeline
    assert "Pending 3" in pipeline
    assert "3 waiting; the oldest since" in pipeline and "(6 days)" in pipeline
    assert '1 example flagged "ground truth changed"' in pipeline
    assert 'href="/admin/curation/drawing/?status__exact=failed"' in html
    assert 'href="/admin/curation/example/?ground_truth_changed=yes"' in html

    steps = _text(_section(html, "dash-next-steps"))
    assert "3 examples wait for review" in steps
    assert f'href="{reverse("admin:curation_example_next_pending")}"' in _section(html, "dash-next-steps")
    # Steps of a Manager's work are not a reviewer's: no launch, no evaluation, no render again.
    assert "ready to launch" not in steps and "evaluate it" not in steps and "failed to render" not in steps

    # Money, runs and dataset gates are the Manager's: not on the page, not in any JSON it carries.
    assert 'id="dash-money"' not in html and "spend-chart" not in html
    assert "$" not in _text(_section(html, "dash-work")) and "Training runs" not in html
    assert "12.25" not in html and "Budget" not in html
    assert "Gates" not in _section(html, "dash-tasks")
    # The active model and its MAPE are for reviewers too (they may read the registry).
    assert "12.3 % (95 % CI 10.1 %–14.6 %)" in _text(_section(html, "dash-tasks"))


def test_the_review_chart_counts_decisions_per_day_and_reviewer_over_30_days(client):
    house = make_house(scale=2)
    html = _index(client, house["rita"])
    chart = _chart(html, "reviews-chart")
    assert len(chart["labels"]) == 30 and chart["y_label"].startswith("Decisions")
    per_reviewer = {s["name"]: s["values"] for s in chart["series"]}
    assert per_reviewer["rita"][-1] == 2 and per_reviewer["rita"][-2] == 2  # today 2 approvals, yesterday 2 rejections
    assert per_reviewer["rolf"][-2] == 1 and sum(per_reviewer["rolf"]) == 1  # the decision 45 days ago is not counted
    # The table fallback renders the same JSON: yesterday's row reads 2 (rita), 1 (rolf), 3 in all.
    yesterday = chart["labels"][-2]
    assert f"{yesterday} 2 1 3" in _text(html)


def test_the_review_chart_puts_each_decision_on_its_own_day_first_and_last_included(client):
    """A decision at the first and last instant of a local day counts on that day, on each of the 30 days."""
    house = make_house()
    example = Example.objects.filter(status=Example.Status.PENDING).first()
    ExampleChange.objects.all().delete()
    first = timezone.localdate() - datetime.timedelta(days=29)
    for day in range(30):
        midnight = timezone.make_aware(datetime.datetime.combine(first + datetime.timedelta(days=day), datetime.time()))
        # day + 1 decisions: one at midnight, the rest in the day's last second
        for at in [midnight] + [midnight + datetime.timedelta(days=1, microseconds=-1)] * day:
            change = decide(example, house["rolf"], "approved", days_ago=0)
            ExampleChange.objects.filter(pk=change.pk).update(at=at)
    chart = _chart(_index(client, house["rita"]), "reviews-chart")
    assert {s["name"]: s["values"] for s in chart["series"]} == {"rolf": list(range(1, 31))}


def test_a_manager_reads_readiness_models_work_money_and_next_steps(client):
    house = make_house()
    html = _index(client, house["mara"])

    tasks = _text(_section(html, "dash-tasks"))
    assert "brackets v1 ready" in tasks and "shafts v1 not ready" in tasks
    assert "FAIL min_rows: 3 (limit 10)" in tasks  # the gate as the build stored it
    assert "ft:gpt-4o-mini-2024-07-18:shop::dash1" in tasks
    assert "12.3 % (95 % CI 10.1 %–14.6 %)" in tasks and "(40 days left)" in tasks

    work = _section(html, "dash-work")
    run = house["running"]
    assert f'href="{reverse("admin:finetune_trainingrun_change", args=[run.pk])}"' in work
    assert "$7.50 estimated" in _text(work) and "$5.00 over budget" in _text(work)
    assert "12 / 40 done" not in _text(work) and "13 / 40 done" in _text(work)  # done and failed answers both count
    # Progress as each page says it, from the same function: steps of the total, builds, imports, renders.
    assert "step 3 / 9 (33%), train loss 0.5" in _text(work)
    assert "brackets: build" in _text(work) and "Running: 5 / 20 (25%) (reading page images)" in _text(work)
    assert "times.csv: import" in _text(work) and "Queued" in _text(work)
    assert "Rendering: 0 / 1 pages (0%)" in _text(work)

    money = _section(html, "dash-money")
    openai_row = _text(re.search(r'<tr data-provider="openai">.*?</tr>', money, re.S).group(0))
    assert openai_row == "openai $12.25 (1 run without a known cost yet) $25.00 $1.50 $0.25 $14.00"
    together_row = _text(re.search(r'<tr data-provider="together">.*?</tr>', money, re.S).group(0))
    assert together_row == "together $3.00 none set — — $3.00"
    assert _text(re.search(r'id="dash-spend-total">(.*?)<', money).group(1)) == "$17.00"
    spend = _chart(html, "spend-chart")
    assert spend["labels"] == ["openai", "together"] and spend["series"][0]["values"] == [12.25, 3.0]

    steps = _section(html, "dash-next-steps")
    ready = house["ready"]
    assert "brackets v1 is ready to launch" in _text(steps)
    assert f"{reverse('admin:finetune_trainingrun_add')}?dataset_version={ready.pk}" in steps
    assert f"run {house['together'].pk} succeeded: evaluate it" in _text(steps)
    assert f"run {house['succeeded'].pk} succeeded" not in _text(steps)  # it has an evaluation already
    assert "shafts v1 is ready" not in _text(steps)  # its gates fail
    assert "2 drawings failed to render" in _text(steps)


def test_the_launch_link_preselects_the_dataset_version(client):
    house = make_house()
    client.force_login(house["mara"])
    response = client.get(reverse("admin:finetune_trainingrun_add") + f"?dataset_version={house['ready'].pk}")
    assert response.status_code == 200
    assert re.search(rf'<option value="{house["ready"].pk}" selected>', response.content.decode())


def test_a_superuser_reads_every_section(client):
    make_house()
    html = _index(client, make_user(superuser=True))
    for section in ("dash-next-steps", "dash-pipeline", "dash-tasks", "dash-work", "dash-money"):
        assert f'id="{section}"' in html


def test_staff_without_a_role_gets_the_plain_index(client):
    make_house()
    html = _index(client, make_user())
    assert 'id="dashboard"' in html  # the frame, with nothing this user may read
    assert "dash-pipeline" not in html and "dash-money" not in html and "dash-tasks" not in html


def test_the_page_asks_the_same_number_of_queries_as_the_data_grows(client):
    """Aggregates in the database, lists cut at a limit: the query count does not grow with the rows."""
    house = make_house()
    client.force_login(house["mara"])
    counts = []
    for grow in (0, WORK_LIMIT + 2):
        grow_house(house, n=grow)
        client.get(reverse("admin:index"))  # warm the caches a first request fills (content types, sessions)
        with CaptureQueriesContext(connection) as queries:
            html = client.get(reverse("admin:index")).content.decode()
        counts.append(len(queries))
    assert counts[0] == counts[1], counts
    # The lists are cut, with the rest one click away; the figures count every row.
    assert f"… and {WORK_LIMIT + 2 + 1 - WORK_LIMIT} more" in _text(_section(html, "dash-work"))
    assert f"{3 + WORK_LIMIT + 2} examples wait for review" in _text(html)
