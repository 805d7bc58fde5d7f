"""The one lifecycle rule: seeded dates, the base model behind any model name, one clock, one warning."""

import datetime

import pytest
from django.core.management import call_command

from curation.models import BaseModel
from curation.services.base_models import (
    SHUTDOWN_SNAPSHOTS,
    base_model_date_warning,
    base_models_seed,
    lifecycle_today,
    lifecycle_warning,
    model_lifecycle,
)
from tests.factories import make_base_model

pytestmark = pytest.mark.django_db


def test_every_snapshot_that_shuts_down_is_seeded_with_both_dates():
    # The migrations ran on the test database: these rows are what a fresh install has.
    assert set(SHUTDOWN_SNAPSHOTS) == {
        "gpt-4o-2024-08-06",
        "gpt-4o-2024-11-20",
        "gpt-4o-mini-2024-07-18",
        "gpt-4.1-2025-04-14",
        "gpt-4.1-mini-2025-04-14",
    }
    for name in SHUTDOWN_SNAPSHOTS:
        row = BaseModel.objects.get(name=name)
        assert (row.jobs_end_date, row.shutdown_date) == (datetime.date(2027, 1, 6), datetime.date(2027, 1, 14)), name
    assert BaseModel.objects.get(name="gpt-4o-2024-11-20").input_price_per_1m is not None


def test_the_seed_fills_empty_dates_and_keeps_edited_ones():
    BaseModel.objects.filter(name="gpt-4.1-2025-04-14").update(shutdown_date=None)
    BaseModel.objects.filter(name="gpt-4o-2024-08-06").update(shutdown_date=datetime.date(2027, 3, 1))
    BaseModel.objects.filter(name="gpt-4o-2024-11-20").delete()
    base_models_seed()
    assert BaseModel.objects.get(name="gpt-4.1-2025-04-14").shutdown_date == datetime.date(2027, 1, 14)
    assert BaseModel.objects.get(name="gpt-4o-2024-08-06").shutdown_date == datetime.date(2027, 3, 1)  # an admin edit
    assert BaseModel.objects.get(name="gpt-4o-2024-11-20").shutdown_date == datetime.date(2027, 1, 14)


@pytest.mark.parametrize(
    "name, base, derived",
    [
        ("gpt-4o-2024-08-06", "gpt-4o-2024-08-06", False),
        ("ft:gpt-4o-2024-08-06:shop:plans:AbC123", "gpt-4o-2024-08-06", True),
        ("ft:gpt-4o-mini-2024-07-18:shop:plans:AbC123:ckpt-step-40", "gpt-4o-mini-2024-07-18", True),
        ("gpt-4.1-mini-2025-04-14.ft-0e208cf33a6a466994aff31a08aba678", "gpt-4.1-mini-2025-04-14", True),  # Azure
        ("ft:gpt-4o-mini:shop::xyz", "gpt-4o-mini-2024-07-18", True),  # an undated base: its one dated row
    ],
)
def test_any_model_name_inherits_its_base_models_dates(name, base, derived):
    from curation.services.base_models import base_models_by_name

    base_models_seed()
    lifecycle = model_lifecycle(model_name=name)
    assert (lifecycle.base_name, lifecycle.derived) == (base, derived)
    # A list page reads the base models once and gets the same answer for every row.
    assert model_lifecycle(model_name=name, base_models=base_models_by_name()) == lifecycle
    assert lifecycle.shutdown_date == datetime.date(2027, 1, 14)
    assert lifecycle.is_shut_down(datetime.date(2027, 1, 14)) and not lifecycle.is_shut_down(datetime.date(2027, 1, 13))


def test_unknown_models_and_models_named_by_their_run():
    base_models_seed()
    assert model_lifecycle(model_name="my-open-weights-7b").shutdown_date is None
    assert model_lifecycle(model_name="gpt-4.1-nano-2025-04-14").shutdown_date is None  # no shutdown announced
    # An Azure deployment called anything: the training run names the base.
    deployment = model_lifecycle(model_name="plans-prod", base_name="gpt-4o-2024-11-20")
    assert deployment.derived and deployment.shutdown_date == datetime.date(2027, 1, 14)
    # gpt-4.1 has three dated rows (4.1, 4.1-mini, 4.1-nano): an undated "gpt-4.1" names none of them, either way.
    from curation.services.base_models import base_models_by_name

    for base_models in (None, base_models_by_name()):
        assert model_lifecycle(model_name="ft:gpt-4.1:shop::x", base_models=base_models).base_model is None


def test_one_clock_frozen_by_the_setting_gives_one_warning_everywhere(settings, capsys):
    from curation.models import Dataset

    settings.GESTIMA_TODAY = "2026-12-26"
    assert lifecycle_today() == datetime.date(2026, 12, 26)
    model = make_base_model("gpt-4o-2024-08-06", price="25", shutdown_date=datetime.date(2027, 1, 14))
    expected = "no new fine-tuning jobs after 2027-01-06 (in 11 days); stops serving on 2027-01-14 (in 19 days)"
    assert base_model_date_warning(model) == expected
    fine_tuned = model_lifecycle(model_name="ft:gpt-4o-2024-08-06:shop::a1")
    assert (
        lifecycle_warning(fine_tuned)
        == "fine-tuned from gpt-4o-2024-08-06, which stops serving on 2027-01-14 (in 19 days)"
    )
    settings.GESTIMA_TODAY = "2027-01-20"
    assert (
        lifecycle_warning(fine_tuned) == "fine-tuned from gpt-4o-2024-08-06, which stops serving on 2027-01-14 (past)"
    )
    settings.GESTIMA_TODAY = "2026-01-01"
    assert base_model_date_warning(model) == ""

    # The dataset command prints the same warning as the admin pages.
    settings.GESTIMA_TODAY = "2026-12-26"
    from tests.curation.test_datasets import approved_examples, make_dataset

    approved_examples(7)
    make_dataset(name="lifecycle")
    call_command("build_dataset", "lifecycle", "--sync")
    out = capsys.readouterr().out
    line = next(line for line in out.splitlines() if "cost gpt-4o-2024-08-06" in line)
    assert expected in line
    assert Dataset.objects.filter(name="lifecycle").exists()
