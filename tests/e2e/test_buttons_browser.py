"""Every button of the pages where work runs in a worker, clicked in a real browser as a Manager and as a
Reviewer: the training run (launch confirmation, Sync now, Cancel, Relaunch), the eval run (Evaluate,
Resume, Promote) and the dataset version (Export, download). Jobs run on real burst workers; the OpenAI
side is the local stand-in or the dry-run provider. The pages follow the worker by themselves
(static/gestima/live.js) and stop asking once the work is over. Screenshots go to test-artifacts/."""

import json
import re
from decimal import Decimal

import pytest
from django.contrib.auth.models import Permission

from finetune.models import EvalRun, ModelVersion, TrainingRun
from finetune.services.run_launch import training_run_create
from tests.e2e.browser import BROWSER_MARKS, log_out, login, screenshot
from tests.factories import make_base_model, make_dataset_version, make_task, make_user
from tests.finetune.conftest import ft_api  # noqa: F401  (the fine-tuning stand-in, wired through settings)
from tests.finetune.evalkit import (
    MODEL,
    make_done_eval_run,
    make_plan_dataset_version,
    make_priced_base_model,
    targets_by_part,
    use_standin,
)
from tests.openai_standin import StandIn
from tests.openai_standin.chat import install_chat, part_number

pytestmark = BROWSER_MARKS
PASSWORD = "Gestima-pw-2026"


@pytest.fixture(autouse=True)
def _fast_polling(settings):
    settings.ADMIN_LIVE_POLL_SECONDS = 0.3


@pytest.fixture
def browser_page(browser_page):
    """The page, with its live polls kept apart from the burst workers this thread runs.

    The live server shares this thread's in-memory SQLite connection: a poll answered while a worker
    writes here fails the job with "database table is locked" (a real deployment has a database of
    its own). Playwright runs route handlers only while this thread waits in a Playwright call, and
    route.fetch() returns once the server has answered, so a poll never overlaps a worker run.
    """
    browser_page.route("**/live.json", lambda route: route.fulfill(response=route.fetch()))
    return browser_page


def _url(live_server, name, *args):
    from django.urls import reverse

    return live_server.url + reverse(f"admin:{name}", args=args)


def _live_requests(page) -> list[str]:
    """The live.json requests the page makes from now on."""
    seen = []
    page.on("request", lambda request: seen.append(request.url) if "/live.json" in request.url else None)
    return seen


def _assert_polling_stopped(page, seen):
    before = len(seen)
    page.wait_for_timeout(1200)  # four poll intervals
    assert len(seen) == before, "a page whose work is over keeps asking"
    assert page.locator("[data-live-url]").count() == 0


def test_manager_launches_syncs_relaunches_and_cancels_a_run_on_the_stand_in(
    live_server,
    transactional_db,
    browser_page,
    ft_api,  # noqa: F811
    run_worker,
    expect,
    roles,
):
    page = browser_page
    make_user("Manager", username="mona", password=PASSWORD)
    run = training_run_create(
        dataset_version=make_dataset_version(), base_model=make_base_model(), user=None, provider="openai", n_epochs=3
    )
    login(page, live_server, "mona", PASSWORD, next_url=_url(live_server, "finetune_trainingrun_change", run.pk))
    expect(page.locator(".run-status")).to_have_text("Draft")

    page.click("text=Launch…")
    page.wait_for_url(f"**/trainingrun/{run.pk}/launch/")
    assert "Billed training tokens" in page.inner_text("#content-main")
    screenshot(page, "run-launch-confirmation")
    page.click(f"input[value='Yes, launch run {run.pk}']")
    page.wait_for_url(f"**/trainingrun/{run.pk}/change/")
    expect(page.locator("ul.messagelist")).to_contain_text(f"Run {run.pk} launched: uploading in the background.")
    expect(page.locator(".run-status")).to_have_text("Uploading")
    expect(page.locator("[data-live-url]")).to_have_attribute("data-live-state", "polling")
    expect(page.locator("[data-live-field=progress]")).to_have_text(
        "Uploading: 0 / 2 files (train pending, validation pending)"
    )

    # The worker uploads the files and creates the job; the page notices without a click.
    run_worker("openai")
    expect(page.locator(".run-status")).to_have_text("Validating files")
    screenshot(page, "run-page-live")

    # "Sync now" posts its own form (it answered a bare 403 while nested in the change form).
    for _ in range(5):
        with page.expect_navigation():
            page.click("input[value='Sync now']")
        status = page.inner_text(".run-status")
        expect(page.locator("ul.messagelist")).to_contain_text(f"Run {run.pk} synced: {status}.")
        if status == "Running":
            # The stand-in's metrics events report 6 steps in all: the bar is full at step 6.
            assert page.inner_text("[data-live-field=progress]").startswith("step 6 / 6 (100%), train loss")
            expect(page.locator("[data-live-bar=progress]")).to_have_attribute("style", re.compile("width:100%"))
        if status == "Succeeded":
            break
    assert status == "Succeeded"
    seen = _live_requests(page)
    assert "ft:gpt-4o-mini-2024-07-18:standin" in page.inner_text(".run-facts")
    screenshot(page, "run-page-succeeded")
    _assert_polling_stopped(page, seen)

    page.click("input[value='Relaunch (reuse files)']")
    page.wait_for_url("**/launch/")  # before reading the database: the click's request may still be on its way
    new = TrainingRun.objects.get(relaunched_from=run)
    assert page.url.endswith(f"/trainingrun/{new.pk}/launch/")
    expect(page.locator("ul.messagelist")).to_contain_text(f"Draft run {new.pk} reuses run {run.pk}'s uploaded files.")
    # The succeeded run trains the same thing: a second paid job is refused until confirmed with a reason.
    expect(page.locator(".run-duplicates")).to_contain_text(f"Run {run.pk}")
    page.click(f"input[value='Yes, launch run {new.pk}']")
    page.wait_for_url(f"**/trainingrun/{new.pk}/launch/")
    expect(page.locator("ul.messagelist")).to_contain_text("already trains the same dataset version")
    page.check("input[name='allow_duplicate']")
    page.fill("textarea[name='duplicate_reason']", "same data, checking the provider's variance")
    page.click(f"input[value='Yes, launch run {new.pk}']")
    page.wait_for_url(f"**/trainingrun/{new.pk}/change/")
    run_worker("openai")
    expect(page.locator(".run-status")).to_have_text("Validating files")
    assert len(ft_api.calls_to("POST", "/files")) == 2  # the relaunch uploaded nothing

    page.click("text=Cancel…")
    page.wait_for_url(f"**/trainingrun/{new.pk}/cancel/")
    screenshot(page, "run-cancel-confirmation")
    page.click(f"input[value='Yes, cancel run {new.pk}']")
    page.wait_for_url(f"**/trainingrun/{new.pk}/change/")
    expect(page.locator("ul.messagelist")).to_contain_text(f"Run {new.pk}: Cancelled.")
    expect(page.locator(".run-status")).to_have_text("Cancelled")
    new.refresh_from_db()
    assert ft_api.fine_tuning.jobs[new.job_id]["status"] == "cancelled"
    assert page.locator("text=Cancel…").count() == 0


def test_launch_confirmation_refuses_over_budget_then_launches_a_dry_run_with_an_override(
    live_server, transactional_db, browser_page, run_worker, expect, roles
):
    page = browser_page
    make_user("Manager", username="mona", password=PASSWORD)
    run = training_run_create(
        dataset_version=make_dataset_version(),
        base_model=make_base_model(),
        user=None,
        provider="dryrun",
        budget_usd=Decimal("0.01"),
    )
    login(page, live_server, "mona", PASSWORD, next_url=_url(live_server, "finetune_trainingrun_launch", run.pk))
    content = page.inner_text("#content-main")
    assert "Provider dryrun" in content and "over budget" in content and "Launch will be refused" in content

    page.click("text=No, go back")
    page.wait_for_url(f"**/trainingrun/{run.pk}/change/")
    page.click("text=Launch…")
    page.click(f"input[value='Yes, launch run {run.pk}']")  # no override: refused, back on the confirmation
    expect(page.locator("ul.messagelist")).to_contain_text("Launch refused")
    assert page.url.endswith(f"/trainingrun/{run.pk}/launch/")
    assert TrainingRun.objects.get(pk=run.pk).status == "draft"

    page.check("input[name=override]")
    page.fill("#id_override_reason", "Approved by the plant manager")
    screenshot(page, "run-launch-override")
    page.click(f"input[value='Yes, launch run {run.pk}']")
    page.wait_for_url(f"**/trainingrun/{run.pk}/change/")
    expect(page.locator(".run-status")).to_have_text("Uploading")
    seen = _live_requests(page)
    run_worker("openai")  # the dry run writes the files and finishes
    expect(page.locator(".run-status")).to_have_text("Dry run complete (files written, no API called)")
    expect(page.locator("input[value='Relaunch (reuse files)']")).to_be_visible()
    assert seen, "the page asked its live endpoint while the run was under way"
    _assert_polling_stopped(page, seen)
    run.refresh_from_db()
    assert run.override and run.override_reason.startswith("Approved by the plant manager")


def test_reviewer_is_refused_manager_pages_and_a_viewer_sees_no_manager_buttons(
    live_server, transactional_db, browser_page, expect, roles
):
    page = browser_page
    make_user("Reviewer", username="rita", password=PASSWORD)
    version = make_plan_dataset_version(n_validation=2, n_train=0)
    eval_run = make_done_eval_run(version)
    run = training_run_create(
        dataset_version=make_dataset_version(), base_model=make_base_model(), user=None, provider="dryrun"
    )
    TrainingRun.objects.filter(pk=run.pk).update(status="failed", error_message="quota")
    login(page, live_server, "rita", PASSWORD)
    for name, args in (
        ("finetune_trainingrun_change", [run.pk]),
        ("finetune_trainingrun_launch", [run.pk]),
        ("finetune_trainingrun_relaunch", [run.pk]),
        ("curation_datasetversion_change", [version.pk]),
        ("curation_datasetversion_export", [version.pk]),
        ("finetune_evalrun_promote", [eval_run.pk]),
        ("finetune_evalrun_resume", [eval_run.pk]),
    ):
        response = page.goto(_url(live_server, name, *args))
        assert response.status == 403, (name, response.status)
        assert "403 Forbidden" in page.content()

    # The eval run is open to reviewers, without the Manager's buttons.
    page.goto(_url(live_server, "finetune_evalrun_change", eval_run.pk))
    expect(page.locator("[data-live-field=status]")).to_have_text("Done")
    assert page.locator("text=Promote…").count() == 0 and page.locator("input[value^=Resume]").count() == 0
    screenshot(page, "eval-run-reviewer")

    # Staff who may only view runs see a finished run's page, never Relaunch, Cancel or Launch.
    viewer = make_user(None, username="vera", password=PASSWORD)
    viewer.user_permissions.add(Permission.objects.get(codename="view_trainingrun"))
    log_out(page)
    login(page, live_server, "vera", PASSWORD, next_url=_url(live_server, "finetune_trainingrun_change", run.pk))
    expect(page.locator(".run-status")).to_have_text("Failed")
    assert page.locator("input[value='Relaunch (reuse files)']").count() == 0
    assert page.locator("text=Cancel…").count() == 0 and page.locator("text=Launch…").count() == 0


def test_manager_evaluates_watches_progress_resumes_a_failed_run_and_promotes(
    live_server, transactional_db, browser_page, run_worker, settings, expect, roles
):
    page = browser_page
    make_user("Manager", username="mona", password=PASSWORD)
    make_priced_base_model()
    task = make_task()
    version = make_plan_dataset_version(task=task, n_validation=2, n_train=0)
    targets = targets_by_part(version)
    with StandIn() as api:
        install_chat(api, lambda body: json.dumps(targets[part_number(body)]))
        use_standin(settings, api)
        login(page, live_server, "mona", PASSWORD, next_url=_url(live_server, "finetune_evalrun_evaluate"))
        page.select_option("#id_task", str(task.pk))
        page.select_option("#id_dataset_version", str(version.pk))
        page.fill("#id_model_name", MODEL)
        page.select_option("#id_model_kind", "base")
        page.select_option("#id_provider", "openai")
        page.click("input[value='Queue the evaluation']")
        page.wait_for_url("**/evalrun/*/change/")
        run = EvalRun.objects.get()
        assert page.url.endswith(f"/evalrun/{run.pk}/change/")
        expect(page.locator("ul.messagelist")).to_contain_text(f"Eval run {run.pk} queued: 2 examples")
        expect(page.locator("[data-live-field=status]")).to_have_text("Queued")
        expect(page.locator("[data-live-field=progress]")).to_have_text("0 / 2")
        screenshot(page, "eval-run-queued")

        settings.OPENAI_API_KEY = ""  # the worker fails the run with the reason on the row
        run_worker("openai")
        expect(page.locator("[data-live-field=status]")).to_have_text("Failed")
        assert "OPENAI_API_KEY" in page.inner_text("#content-main")

        use_standin(settings, api)
        page.click("input[value^=Resume]")
        expect(page.locator("ul.messagelist")).to_contain_text(f"Eval run {run.pk} queued again")
        expect(page.locator("[data-live-field=status]")).to_have_text("Queued")
        run_worker("openai")
        expect(page.locator("[data-live-field=status]")).to_have_text("Done")
        expect(page.locator("[data-live-field=progress]")).to_have_text("2 / 2")
        assert "JSON validity" in page.inner_text("#content-main")
        assert page.locator("input[value^=Resume]").count() == 0
        screenshot(page, "eval-run-done")

    page.click("text=Promote…")
    page.wait_for_url(f"**/evalrun/{run.pk}/promote/")
    if (
        page.locator("#id_override_reason").is_visible()
        and page.locator("input[value='Promote with override']").count()
    ):
        page.fill("#id_override_reason", "First model of this task")
    screenshot(page, "eval-run-promote")
    page.click("div.submit-row input[type=submit]")
    page.wait_for_url("**/modelversion/*/change/")
    version_row = ModelVersion.objects.get(task=task, is_active=True)
    assert page.url.endswith(f"/modelversion/{version_row.pk}/change/")
    # (the admin's stylesheet capitalises the first letter of a message)
    expect(page.locator("ul.messagelist")).to_contain_text(
        f"{MODEL} is now the active model of {task}", ignore_case=True
    )


def test_manager_exports_a_dataset_version_and_downloads_its_files(
    live_server, transactional_db, browser_page, run_worker, expect, roles
):
    page = browser_page
    make_user("Manager", username="mona", password=PASSWORD)
    version = make_dataset_version(n_train=10, n_validation=2)
    login(page, live_server, "mona", PASSWORD, next_url=_url(live_server, "curation_datasetversion_change", version.pk))
    page.click("input[value^='Export (']")
    expect(page.locator("ul.messagelist")).to_contain_text(
        f"{version}: export queued; the progress shows below.", ignore_case=True
    )
    expect(page.locator("[data-live-field=export]")).to_have_text("Queued: 0 / 12 lines (0%)")
    assert page.locator("input[value^=Export]").count() == 0  # no second export while one is queued
    screenshot(page, "dataset-version-export-queued")

    run_worker("default")
    expect(page.locator("text=train.jsonl").first).to_be_visible()
    assert "Done" in page.inner_text("#content-main")
    expect(page.locator("input[value^='Export again']")).to_be_visible()
    screenshot(page, "dataset-version-exported")
    with page.expect_download() as download:
        page.click("a:text-is('train.jsonl')")
    assert download.value.suggested_filename.endswith("-v1-train.jsonl")
    lines = open(download.value.path(), encoding="utf-8").read().splitlines()
    assert len(lines) == 10 and all(json.loads(line)["messages"] for line in lines)
