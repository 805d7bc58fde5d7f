"""The dataset version page's cost projection: this size, ×2 and ×5 per base model and provider, each figure the
one training-cost function's with the version's tokens scaled; Managers only."""

import re
from decimal import Decimal

import pytest
from django.urls import reverse

from curation.models import BaseModel
from curation.services.dataset_costs import dataset_version_training_cost
from tests.factories import make_base_model, make_dataset_version, make_user

pytestmark = pytest.mark.django_db


def _projection_rows(html: str) -> dict[str, list[str]]:
    """{base model: [provider, cells...]} as a person reads the projection table."""
    table = re.search(r'<fieldset[^>]*id="cost-projection".*?</fieldset>', html, re.S).group(0)
    rows = {}
    for row in re.findall(r"<tr data-model=.*?</tr>", table, re.S):
        cells = [
            " ".join(re.sub(r"<[^>]+>", " ", c).split()) for c in re.findall(r"<t[hd][^>]*>(.*?)</t[hd]>", row, re.S)
        ]
        rows[cells[1]] = [cells[0], *cells[2:]]
    return rows


@pytest.fixture
def version():
    BaseModel.objects.update(active=False)  # only the models of this test
    make_base_model("gpt-4o-mini-2024-07-18", price="3.00", provider="openai", active=True)
    make_base_model("meta-llama/Llama-3.1-8B-Instruct", price="0.48", provider="together", active=True)
    make_base_model("priceless-model", price="1", provider="together", active=True)
    BaseModel.objects.filter(name="priceless-model").update(training_price_per_1m=None)
    # 10 train rows of 1,000 tokens, 3 epochs.
    return make_dataset_version(n_train=10, n_validation=2, tokens_per_example=1000, epochs=3)


def test_a_manager_reads_the_projection_from_the_one_cost_function(client, roles, version):
    client.force_login(make_user("Manager"))
    html = client.get(reverse("admin:curation_datasetversion_change", args=[version.pk])).content.decode()
    rows = _projection_rows(html)
    assert set(rows) == {"gpt-4o-mini-2024-07-18", "meta-llama/Llama-3.1-8B-Instruct", "priceless-model"}
    for model in BaseModel.objects.filter(active=True):
        expected = []
        for scale in (1, 2, 5):
            cost = dataset_version_training_cost(version=version, base_model=model, scale=scale)
            expected.append(f"${cost.usd}" if cost.usd is not None else "unknown (no published price)")
        assert rows[model.name][1:4] == expected, model.name
    # 30,000 billed tokens at $3 per million, then twice and five times the tokens.
    assert rows["gpt-4o-mini-2024-07-18"][:4] == ["openai", "$0.09", "$0.18", "$0.45"]
    assert rows["gpt-4o-mini-2024-07-18"][4] == "10000 × 3"
    assert rows["priceless-model"][1:4] == ["unknown (no published price)"] * 3  # never $0


def test_scaling_multiplies_the_tokens_not_the_rounded_price(version):
    model = BaseModel.objects.get(name="meta-llama/Llama-3.1-8B-Instruct")
    one = dataset_version_training_cost(version=version, base_model=model)
    five = dataset_version_training_cost(version=version, base_model=model, scale=5)
    assert five.train_tokens == 5 * one.train_tokens and five.epochs == one.epochs
    assert one.usd == Decimal("0.01") and five.usd == Decimal("0.07")  # 30,000 and 150,000 tokens at $0.48 / 1M


def test_a_reviewer_sees_no_dataset_version_and_no_cost(client, roles, version):
    client.force_login(make_user("Reviewer"))
    response = client.get(reverse("admin:curation_datasetversion_change", args=[version.pk]))
    assert response.status_code == 403 and "cost-projection" not in response.content.decode()
