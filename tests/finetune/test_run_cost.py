"""One training-cost figure: the dataset page, the launch confirmation and the budget guard agree, and a
model that cannot fine-tune on images is refused for a dataset with images (with the reason)."""

import re
from decimal import Decimal

import pytest
from django.urls import reverse

from curation.models import BaseModel, Dataset, Example
from curation.services.base_models import base_models_seed
from curation.services.datasets import dataset_build
from finetune.services.run_launch import training_run_create, training_run_launch
from finetune.services.run_state import TrainingRunError
from tests.factories import make_example, make_task, technology_target

pytestmark = pytest.mark.django_db

MINI_41 = "gpt-4.1-mini-2025-04-14"
MINI_4O = "gpt-4o-mini-2024-07-18"


@pytest.fixture
def image_version():
    """A real build: ten approved examples, each with a rendered 1200 × 850 page (image tokens differ per model)."""
    base_models_seed()
    task = make_task()
    for i in range(10):
        make_example(task=task, status=Example.Status.APPROVED, target=technology_target(f"P-{i}", minutes=5 + i))
    dataset = Dataset.objects.create(name="drawings", task=task, epochs=3, validation_fraction=0)
    return dataset_build(dataset=dataset)


def _dataset_page_cost(client, version, model_name) -> str:
    page = client.get(reverse("admin:curation_datasetversion_change", args=[version.pk])).content.decode()
    row = re.search(rf"<tr><td>{re.escape(model_name)}</td><td>\$([0-9.]+)</td>", page)
    assert row, f"no cost row for {model_name} on the dataset page"
    return row.group(1)


def _confirmation_cost(client, run) -> str:
    page = client.get(reverse("admin:finetune_trainingrun_launch", args=[run.pk])).content.decode()
    return re.search(r"Estimated cost vs budget</th>\s*<td><strong[^>]*>\$([0-9.]+)</strong>", page).group(1), page


def test_the_confirmation_shows_the_dataset_pages_cost_for_the_same_model(client, manager, image_version):
    client.force_login(manager)
    mini = BaseModel.objects.get(name=MINI_41)
    run = training_run_create(dataset_version=image_version, base_model=mini, user=manager, provider="dryrun")
    shown_on_dataset = _dataset_page_cost(client, image_version, MINI_41)
    shown_on_confirmation, page = _confirmation_cost(client, run)
    # gpt-4.1-mini counts images in patches (× 1.62), not in tiles: its own count on both pages.
    assert shown_on_confirmation == shown_on_dataset
    assert Decimal(shown_on_dataset) == Decimal(image_version.cost_estimates[MINI_41]["usd"])
    assert run.estimated_cost_usd == Decimal(shown_on_dataset)  # what the budget guard compares
    assert "× 3 epochs" in page


def test_the_budget_guard_uses_the_same_figure(client, manager, image_version):
    mini = BaseModel.objects.get(name=MINI_41)
    figure = Decimal(image_version.cost_estimates[MINI_41]["usd"])
    just_below = figure - Decimal("0.01")
    run = training_run_create(
        dataset_version=image_version, base_model=mini, user=manager, provider="dryrun", budget_usd=just_below
    )
    with pytest.raises(TrainingRunError, match=rf"estimated cost \${figure} is over the budget"):
        training_run_launch(run=run, user=manager)


def test_a_text_only_model_is_refused_for_an_image_dataset_even_with_an_override(client, manager, image_version):
    client.force_login(manager)
    mini_4o = BaseModel.objects.get(name=MINI_4O)
    run = training_run_create(dataset_version=image_version, base_model=mini_4o, user=manager, provider="dryrun")
    shown_on_confirmation, page = _confirmation_cost(client, run)
    assert shown_on_confirmation == _dataset_page_cost(client, image_version, MINI_4O)
    assert "This run cannot be launched" in page and "does not take images for fine-tuning" in page
    assert "Yes, launch" not in page and 'name="override_reason"' not in page

    response = client.post(
        reverse("admin:finetune_trainingrun_launch", args=[run.pk]),
        {"override": "1", "override_reason": "try anyway"},
        follow=True,
    )
    assert "does not take images for fine-tuning" in response.content.decode()
    with pytest.raises(TrainingRunError, match="does not take images"):
        training_run_launch(run=run, user=manager, override_reason="try anyway")
    run.refresh_from_db()
    assert run.status == "draft"


def test_a_model_added_after_the_build_is_counted_from_the_members(manager, image_version):
    nano = BaseModel.objects.get(name="gpt-4.1-nano-2025-04-14")
    later = BaseModel.objects.create(
        name="gpt-4.1-nano-later",
        training_price_per_1m=nano.training_price_per_1m,
        image_tokens=nano.image_tokens,
        patch_multiplier=nano.patch_multiplier,
    )
    run = training_run_create(dataset_version=image_version, base_model=later, user=manager, provider="dryrun")
    assert run.estimated_cost_usd == Decimal(image_version.cost_estimates[nano.name]["usd"])
