"""Promotion by the task's policy, overrides with a reason, the registry's one active model, Manager only."""

import pytest
from django.core.exceptions import PermissionDenied

from finetune.models import ModelVersion
from finetune.services.comparison import eval_runs_compare
from finetune.services.promotion import (
    PromotionRefused,
    model_version_activate,
    model_version_active,
    model_version_promote,
)
from tests.factories import make_user
from tests.finetune.evalkit import FT_MODEL, MODEL, make_plan_dataset_version, make_done_eval_run

pytestmark = pytest.mark.django_db
MT = "operations[].machine_time_min_per_piece"


@pytest.fixture
def manager(roles):
    return make_user("Manager")


N = 20  # the default policy's minimum of evaluated examples


@pytest.fixture
def version():
    return make_plan_dataset_version(n_validation=N, n_train=0)


def test_promotion_is_refused_while_the_policy_fails_and_nothing_changes(manager, version):
    run = make_done_eval_run(version, factor=1.2)  # MAPE 20 % > 15 %
    with pytest.raises(PromotionRefused) as refused:
        model_version_promote(eval_run=run, user=manager)
    failed = {c["name"]: c for c in refused.value.checks if not c["passed"]}
    assert set(failed) == {"max_mape"} and failed["max_mape"]["value"] == pytest.approx(0.2)
    assert not ModelVersion.objects.exists()


def test_an_override_reason_promotes_anyway_and_is_recorded(manager, version):
    run = make_done_eval_run(version, factor=1.2, invalid=1)
    mv = model_version_promote(eval_run=run, user=manager, override_reason="Customer pilot, times checked by hand")
    assert mv.is_active and not mv.policy_passed
    assert mv.override_reason == "Customer pilot, times checked by hand"
    assert {c["name"] for c in mv.report["checks"] if not c["passed"]} == {"max_mape", "min_json_validity"}, mv.report[
        "checks"
    ]
    assert "**Overridden**: Customer pilot" in mv.model_card
    assert version.content_hash in mv.model_card and "95 % CI" in mv.model_card
    assert mv.report["dataset_version"]["content_hash"] == version.content_hash


def test_a_passing_run_is_promoted_and_replaces_the_active_model(manager, version):
    base = make_done_eval_run(version, factor=1.05)  # MAPE 5 %
    first = model_version_promote(eval_run=base, user=manager)
    assert first.policy_passed and model_version_active(task=version.dataset.task) == first
    assert all(c["passed"] for c in first.report["checks"])

    better = make_done_eval_run(version, model_name=FT_MODEL, kind="fine_tuned", factor=1.01)
    second = model_version_promote(eval_run=better, user=manager)
    first.refresh_from_db()
    assert second.is_active and not first.is_active
    assert ModelVersion.objects.filter(task=version.dataset.task, is_active=True).count() == 1
    comparison = second.report["comparison"]
    assert comparison["n_shared"] == N and comparison["b_wins"] == N
    assert comparison["numeric"][MT]["diff"] == pytest.approx(0.01 - 0.05)
    assert "Comparison with the previously active model" in second.model_card and f"{N} better" in second.model_card

    # Rollback: switch the registry back without touching code.
    model_version_activate(model_version=first, user=manager)
    assert model_version_active(task=version.dataset.task) == first


def test_worse_than_the_active_model_beyond_the_interval_is_refused(manager, version):
    model_version_promote(eval_run=make_done_eval_run(version, factor=1.0), user=manager)  # active: MAPE 0 %
    candidate = make_done_eval_run(version, model_name=FT_MODEL, kind="fine_tuned", factor=1.10)  # 10 %: within 15 %
    with pytest.raises(PromotionRefused) as refused:
        model_version_promote(eval_run=candidate, user=manager)
    failed = [c["name"] for c in refused.value.checks if not c["passed"]]
    assert failed == ["not_worse_than_active"]


def test_a_difference_inside_the_interval_is_not_worse(manager, version):
    model_version_promote(eval_run=make_done_eval_run(version, factor=1.02), user=manager)
    # Better on some examples, worse on others: the interval of the difference spans 0.
    candidate = make_done_eval_run(
        version, model_name=FT_MODEL, kind="fine_tuned", factor=lambda pos: 1.06 if pos % 2 else 1.0
    )
    mv = model_version_promote(eval_run=candidate, user=manager)
    check = next(c for c in mv.report["checks"] if c["name"] == "not_worse_than_active")
    assert (
        check["passed"]
        and mv.report["comparison"]["numeric"][MT]["ci"][0] < 0 < mv.report["comparison"]["numeric"][MT]["ci"][1]
    )


def test_reviewers_cannot_promote_or_switch_models(roles, version):
    reviewer = make_user("Reviewer")
    run = make_done_eval_run(version, factor=1.0)
    with pytest.raises(PermissionDenied):
        model_version_promote(eval_run=run, user=reviewer)
    mv = model_version_promote(eval_run=run, user=make_user("Manager"))
    with pytest.raises(PermissionDenied):
        model_version_activate(model_version=mv, user=reviewer)


def test_compare_two_runs_on_the_same_examples(version):
    a = make_done_eval_run(version, factor=1.2)
    b = make_done_eval_run(version, model_name=FT_MODEL, kind="fine_tuned", factor=1.1)
    c = eval_runs_compare(run_a=a, run_b=b)
    assert (c["b_wins"], c["b_losses"], c["ties"]) == (N, 0, 0)
    assert c["numeric"][MT]["diff"] == pytest.approx(-0.1)
    assert c["a"]["model"] == MODEL and c["b"]["model"] == FT_MODEL


def test_admin_promote_page_is_manager_only_and_needs_a_reason_when_the_policy_fails(client, roles, version):
    run = make_done_eval_run(version, factor=1.2)
    url = f"/admin/finetune/evalrun/{run.pk}/promote/"
    reviewer = make_user("Reviewer")
    client.force_login(reviewer)
    assert client.get(url).status_code == 403
    assert client.post(url, {"override_reason": "because"}).status_code == 403
    # The changelist does not even offer the action to a Reviewer.
    page = client.get("/admin/finetune/evalrun/")
    assert page.status_code == 200 and b"promote_selected" not in page.content
    assert not ModelVersion.objects.exists()

    client.force_login(make_user("Manager"))
    page = client.get(url)
    assert page.status_code == 200 and b"FAIL" in page.content and b"max_mape" in page.content
    client.post(url, {"override_reason": ""})
    assert not ModelVersion.objects.exists()
    response = client.post(url, {"override_reason": "Pilot with one customer"})
    mv = ModelVersion.objects.get()
    assert response.status_code == 302 and mv.override_reason == "Pilot with one customer"
    card = client.get(f"/admin/finetune/modelversion/{mv.pk}/model-card.md")
    assert card.status_code == 200 and card["Content-Disposition"].endswith('.md"') and b"# Model card" in card.content
    report = client.get(f"/admin/finetune/modelversion/{mv.pk}/report.json")
    assert report.json()["override_reason"] == "Pilot with one customer"
    assert client.get(f"/admin/finetune/modelversion/{mv.pk}/change/").status_code == 200


def test_admin_eval_run_page_and_comparison_render(client, roles, version):
    a = make_done_eval_run(version, factor=1.2, invalid=1)
    b = make_done_eval_run(version, model_name=FT_MODEL, kind="fine_tuned", factor=1.1)
    client.force_login(make_user("Reviewer"))
    page = client.get(f"/admin/finetune/evalrun/{a.pk}/change/")
    assert page.status_code == 200
    assert b"MAPE operations[].machine_time_min_per_piece" in page.content and b"invalid_json" in page.content
    response = client.post("/admin/finetune/evalrun/", {"action": "compare_selected", "_selected_action": [a.pk, b.pk]})
    assert response.status_code == 302 and response["Location"].endswith(f"/compare/{a.pk}/{b.pk}/")
    page = client.get(response["Location"])
    assert page.status_code == 200 and f"B better on <b>{N}</b>, worse on <b>0</b>".encode() in page.content


def test_promote_and_compare_commands_mirror_the_admin(roles, version):
    from io import StringIO

    from django.core.management import CommandError, call_command

    manager, reviewer = make_user("Manager"), make_user("Reviewer")
    a = make_done_eval_run(version, factor=1.2)
    b = make_done_eval_run(version, model_name=FT_MODEL, kind="fine_tuned", factor=1.1)
    with pytest.raises(CommandError, match="Only Managers"):
        call_command("promote", str(a.pk), "--user", reviewer.username)
    with pytest.raises(CommandError, match="policy fails"):
        call_command("promote", str(a.pk), "--user", manager.username)
    out = StringIO()
    call_command("promote", str(a.pk), "--user", manager.username, "--override-reason", "trial", stdout=out)
    assert "policy overridden" in out.getvalue()
    assert ModelVersion.objects.get(is_active=True).override_reason == "trial"
    out = StringIO()
    call_command("compare", str(a.pk), str(b.pk), stdout=out)
    mape_line = next(line for line in out.getvalue().splitlines() if "MAPE operations[].machine_time" in line)
    assert f"B better on {N}, worse on 0" in out.getvalue() and "B-A -10.0 %" in " ".join(mape_line.split())


def test_model_card_names_the_training_run_and_its_hyperparameters(manager, version):
    from finetune.models import TrainingRun
    from tests.finetune.evalkit import make_priced_base_model

    base = make_priced_base_model()
    training_run = TrainingRun.objects.create(
        dataset_version=version,
        base_model=base,
        provider="openai",
        n_epochs="3",
        learning_rate_multiplier="0.5",
        job_id="ftjob-abc",
        fine_tuned_model=FT_MODEL,
    )
    run = make_done_eval_run(version, model_name=FT_MODEL, kind="fine_tuned", factor=1.05)
    run.training_run = training_run
    run.save(update_fields=["training_run"])
    mv = model_version_promote(eval_run=run, user=manager)
    assert mv.training_run == training_run
    assert "Base model: gpt-4o-2024-08-06; training run" in mv.model_card and "`ftjob-abc`" in mv.model_card
    assert "n_epochs=3, batch_size=auto, learning_rate_multiplier=0.5" in mv.model_card
    assert mv.report["training_run"]["hyperparameters"]["n_epochs"] == 3
    assert "MAPE `operations[].machine_time_min_per_piece` | 5.0 % (95 % CI 5.0 %–5.0 %)" in mv.model_card


def test_the_worst_and_the_largest_differences_show_each_drawing_at_one_query_per_table(client, roles):
    """Drawing thumbnails (page 1) in the worst-examples and comparison tables: the pages are prefetched,
    so twice the rows cost no extra query."""
    import re

    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from curation.models import DrawingPage

    client.force_login(make_user("Reviewer"))
    counts = []
    for n in (3, 6):
        small = make_plan_dataset_version(n_validation=n, n_train=0)
        a = make_done_eval_run(small, factor=lambda pos: 1.0 + pos / 10)
        b = make_done_eval_run(small, model_name=FT_MODEL, kind="fine_tuned", factor=1.05)
        client.get(f"/admin/finetune/evalrun/{a.pk}/change/")  # warm: per-process caches fill on a first visit
        with CaptureQueriesContext(connection) as page_queries:
            page = client.get(f"/admin/finetune/evalrun/{a.pk}/change/").content.decode()
        with CaptureQueriesContext(connection) as compare_queries:
            compare = client.get(f"/admin/finetune/evalrun/compare/{a.pk}/{b.pk}/").content.decode()
        first_pages = {
            p.pk for p in DrawingPage.objects.filter(drawing__examples__memberships__version=small, number=1)
        }
        for html in (page, compare):
            shown = {int(pk) for pk in re.findall(r"/page/(\d+)/image/\?size=thumb", html)}
            assert shown and shown <= first_pages
        counts.append((len(page_queries.captured_queries), len(compare_queries.captured_queries)))
    assert counts[0] == counts[1]
