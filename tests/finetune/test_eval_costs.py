"""Inference costs: seeded prices for the known base models and their fine-tuned variants, a fine-tuned
model priced at its base's fine-tuned prices, and "unknown" (never $0) when no price is known."""

import json
from decimal import Decimal
from io import StringIO

import pytest
from django.core.management import call_command

from curation.models import BaseModel
from finetune.models import EvalRun
from tests.factories import make_task, make_user
from tests.finetune.evalkit import FT_MODEL, MODEL, make_plan_dataset_version, targets_by_part, use_standin
from tests.openai_standin import StandIn
from tests.openai_standin.chat import install_chat, part_number

pytestmark = pytest.mark.django_db


def _evaluate(settings, model, *, kind):
    """`evaluate MODEL VERSION --foreground` against the stand-in (100 prompt + 20 completion tokens a call)."""
    task = make_task()
    version = make_plan_dataset_version(task=task, n_validation=2, n_train=0)
    targets = targets_by_part(version)
    out = StringIO()
    with StandIn() as api:
        install_chat(api, lambda body: json.dumps(targets[part_number(body)]))
        use_standin(settings, api)
        call_command("evaluate", model, str(version.pk), "--kind", kind, "--foreground", stdout=out)
    return EvalRun.objects.latest("pk"), out.getvalue()


def test_the_migration_seeds_inference_prices_of_base_and_fine_tuned_models():
    prices = {
        m.name: (
            m.input_price_per_1m,
            m.output_price_per_1m,
            m.fine_tuned_input_price_per_1m,
            m.fine_tuned_output_price_per_1m,
        )
        for m in BaseModel.objects.all()
    }
    assert prices["gpt-4o-2024-08-06"] == (Decimal("2.5"), Decimal("10"), Decimal("3.75"), Decimal("15"))
    assert prices["gpt-4o-mini-2024-07-18"] == (Decimal("0.15"), Decimal("0.6"), Decimal("0.3"), Decimal("1.2"))
    assert prices["gpt-4.1-2025-04-14"] == (Decimal("2"), Decimal("8"), Decimal("3"), Decimal("12"))
    assert prices["gpt-4.1-mini-2025-04-14"] == (Decimal("0.4"), Decimal("1.6"), Decimal("0.8"), Decimal("3.2"))
    assert prices["gpt-4.1-nano-2025-04-14"] == (Decimal("0.1"), Decimal("0.4"), Decimal("0.2"), Decimal("0.8"))


def test_a_fine_tuned_model_costs_its_bases_fine_tuned_prices(settings, roles):
    run, out = _evaluate(settings, FT_MODEL, kind="fine_tuned")
    # 2 calls × (100 × $3.75 + 20 × $15) per 1M: the fine-tuned gpt-4o prices, not the base's $2.50 / $10.
    assert run.cost_usd == Decimal("0.001350")
    assert "cost $0.001350" in out


def test_unknown_prices_show_unknown_on_the_eval_page_and_in_the_command(settings, client, roles):
    BaseModel.objects.filter(name=MODEL).update(input_price_per_1m=None, output_price_per_1m=None)
    run, out = _evaluate(settings, MODEL, kind="base")
    assert run.status == EvalRun.Status.DONE and run.input_tokens == 200
    assert run.cost_usd is None
    assert "cost unknown" in out and "$0" not in out
    client.force_login(make_user("Manager"))
    listing = client.get("/admin/finetune/evalrun/").content.decode()
    assert '<td class="field-cost_display">unknown</td>' in listing
    page = client.get(f"/admin/finetune/evalrun/{run.pk}/change/").content.decode()
    assert "unknown" in page and "0.000000" not in page
    results = client.get(f"/admin/finetune/evalresult/?eval_run__id__exact={run.pk}").content.decode()
    assert "0.000000" not in results and "unknown" in results


def test_a_model_nobody_priced_is_unknown_too(settings, roles):
    run, out = _evaluate(settings, "my-local-model", kind="base")
    assert run.cost_usd is None and "cost unknown" in out


def test_base_models_admin_edits_inference_prices(client, roles):
    client.force_login(make_user(superuser=True, role=None))
    mini = BaseModel.objects.get(name="gpt-4o-mini-2024-07-18")
    page = client.get(f"/admin/curation/basemodel/{mini.pk}/change/").content.decode()
    assert 'name="fine_tuned_input_price_per_1m"' in page and 'name="output_price_per_1m"' in page
    listing = client.get("/admin/curation/basemodel/").content.decode()
    assert "$0.1500 / $0.6000" in listing and "$0.3000 / $1.2000" in listing
