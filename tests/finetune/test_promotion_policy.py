"""The promotion policy refuses numbers too thin to trust: too few examples, too wide an interval, or
examples the model trained on ("leaks training data"); an override still needs a recorded reason."""

from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from curation.models import Task
from finetune.models import ModelVersion, TrainingRun
from finetune.services.promotion import PromotionRefused, model_version_promote
from tests.factories import make_user
from tests.finetune.evalkit import FT_MODEL, make_done_eval_run, make_plan_dataset_version, make_priced_base_model

pytestmark = pytest.mark.django_db


@pytest.fixture
def manager(roles):
    return make_user("Manager")


def _failed(refused) -> dict:
    return {c["name"]: c for c in refused.value.checks if not c["passed"]}


def test_a_perfect_eval_of_two_examples_does_not_promote(manager):
    version = make_plan_dataset_version(n_validation=2, n_train=0)
    run = make_done_eval_run(version, factor=1.0)  # MAPE 0 %, JSON validity 100 %: on 2 examples
    with pytest.raises(PromotionRefused, match=r"2 example\(s\) evaluated \(minimum 20\)") as refused:
        model_version_promote(eval_run=run, user=manager)
    assert set(_failed(refused)) == {"min_examples"}
    assert not ModelVersion.objects.exists()


def test_a_task_may_set_its_own_minimum(manager):
    version = make_plan_dataset_version(n_validation=2, n_train=0)
    Task.objects.filter(pk=version.dataset.task_id).update(
        promotion_policy={"max_mape": 0.15, "min_json_validity": 0.98, "min_examples": 2}
    )
    run = make_done_eval_run(version, factor=1.0)
    assert model_version_promote(eval_run=run, user=manager).policy_passed


def test_too_wide_an_interval_does_not_promote(manager):
    version = make_plan_dataset_version(n_validation=20, n_train=0)
    Task.objects.filter(pk=version.dataset.task_id).update(promotion_policy={"max_mape": 0.6})
    # Half the answers exact, half double: MAPE 50 % with a 95 % interval about 44 points wide.
    run = make_done_eval_run(version, factor=lambda pos: 2.0 if pos % 2 else 1.0)
    with pytest.raises(PromotionRefused, match="points wide") as refused:
        model_version_promote(eval_run=run, user=manager)
    failed = _failed(refused)
    assert set(failed) == {"max_ci_width"} and failed["max_ci_width"]["value"] > 0.2
    assert failed["max_ci_width"]["threshold"] == 0.2


def test_a_train_split_eval_leaks_training_data_and_needs_a_recorded_override(client, manager):
    version = make_plan_dataset_version(n_validation=20, n_train=20)
    leaky = make_done_eval_run(version, model_name=FT_MODEL, kind="fine_tuned", factor=1.0, split="train")
    honest = make_done_eval_run(version, factor=1.05)
    with pytest.raises(PromotionRefused, match="leaks training data") as refused:
        model_version_promote(eval_run=leaky, user=manager)
    assert set(_failed(refused)) == {"unseen_examples"}
    with pytest.raises(CommandError, match="leaks training data"):
        call_command("promote", str(leaky.pk), "--user", manager.username)

    client.force_login(manager)
    page = client.get(f"/admin/finetune/evalrun/{leaky.pk}/change/").content.decode()
    assert "leaks training data: evaluated on the train split" in page
    assert "leaks training data" not in client.get(f"/admin/finetune/evalrun/{honest.pk}/change/").content.decode()
    base_on_train = make_done_eval_run(version, factor=1.1, split="train")
    listing = client.get("/admin/finetune/evalrun/").content.decode()
    assert listing.count("⚠ leaks training data") == 2  # the two train-split runs, not the honest one
    comparison = client.get(f"/admin/finetune/evalrun/compare/{base_on_train.pk}/{leaky.pk}/").content.decode()
    assert f"Eval run {leaky.pk} ({FT_MODEL}): leaks training data" in comparison
    out = StringIO()
    call_command("compare", str(base_on_train.pk), str(leaky.pk), stdout=out)
    assert f"B (run {leaky.pk}) leaks training data" in out.getvalue()
    promote_page = client.get(f"/admin/finetune/evalrun/{leaky.pk}/promote/").content.decode()
    assert "FAIL" in promote_page and "unseen_examples" in promote_page

    mv = model_version_promote(eval_run=leaky, user=manager, override_reason="Smoke test of the serving path only")
    assert not mv.policy_passed and mv.override_reason == "Smoke test of the serving path only"
    assert "FAIL `unseen_examples`: leaks training data" in mv.model_card


def test_examples_the_linked_run_trained_on_leak_even_from_another_version(client, manager):
    trained_on = make_plan_dataset_version(n_validation=0, n_train=20)
    # A later version whose validation split holds the same examples the run learnt from.
    later = make_plan_dataset_version(n_validation=0, n_train=0)
    for member in trained_on.members.all():
        later.members.create(
            example=member.example,
            split="validation",
            position=member.position,
            messages=member.messages,
            target=member.target,
        )
    training_run = TrainingRun.objects.create(
        dataset_version=trained_on,
        base_model=make_priced_base_model(),
        provider="openai",
        status="succeeded",
        fine_tuned_model=FT_MODEL,
    )
    run = make_done_eval_run(later, model_name=FT_MODEL, kind="fine_tuned", training_run=training_run)
    with pytest.raises(PromotionRefused, match=f"20 of the evaluated examples were in the train split of {trained_on}"):
        model_version_promote(eval_run=run, user=manager)

    # The run list says the same, from one annotation: another such run adds no query to the page.
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    client.force_login(manager)
    with CaptureQueriesContext(connection) as one:
        listing = client.get("/admin/finetune/evalrun/").content.decode()
    assert listing.count("⚠ leaks training data") == 1
    assert f"20 of the evaluated examples were in the train split of {trained_on}" in listing
    make_done_eval_run(later, model_name=FT_MODEL, kind="fine_tuned", training_run=training_run)
    with CaptureQueriesContext(connection) as two:
        listing = client.get("/admin/finetune/evalrun/").content.decode()
    assert listing.count("⚠ leaks training data") == 2 and len(two.captured_queries) == len(one.captured_queries)
