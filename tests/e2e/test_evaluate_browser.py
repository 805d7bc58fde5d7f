"""The Evaluate button of a succeeded training run in a real browser: a Manager clicks it and reads the two
queued eval runs and the lineage; staff who may see runs but not evaluate are not offered it."""

import pytest

from django.contrib.auth.models import Permission

from finetune.models import EvalRun, TrainingRun
from tests.e2e.browser import BROWSER_MARKS, log_out
from tests.factories import make_user
from tests.finetune.evalkit import FT_MODEL, MODEL, make_plan_dataset_version, make_priced_base_model

pytestmark = BROWSER_MARKS


@pytest.fixture
def page(browser_page):
    return browser_page


def _log_in(page, live_server, username, password, next_url):
    page.goto(f"{live_server.url}/admin/login/?next={next_url}")
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    page.click("input[type=submit]")


def test_a_manager_evaluates_a_succeeded_run_and_a_viewer_is_not_offered_it(live_server, transactional_db, page):
    make_user("Manager", username="mara", password="Manager-pw-2026")
    viewer = make_user(None, username="vera", password="Viewer-pw-2026")
    viewer.user_permissions.add(Permission.objects.get(codename="view_trainingrun"))
    version = make_plan_dataset_version(n_validation=3, n_train=2)
    run = TrainingRun.objects.create(
        dataset_version=version,
        base_model=make_priced_base_model(),
        provider="openai",
        status="succeeded",
        job_id="ftjob-browser",
        fine_tuned_model=FT_MODEL,
    )
    run_url = f"/admin/finetune/trainingrun/{run.pk}/change/"

    _log_in(page, live_server, "vera", "Viewer-pw-2026", run_url)
    page.wait_for_selector(".run-page")
    assert page.locator("input[value='Evaluate (base vs fine-tuned)']").count() == 0
    log_out(page)

    _log_in(page, live_server, "mara", "Manager-pw-2026", run_url)
    page.click("input[value='Evaluate (base vs fine-tuned)']")
    page.wait_for_url(f"**/admin/finetune/evalrun/?training_run__id__exact={run.pk}")
    message = " ".join(page.inner_text(".messagelist").split())
    assert f"{MODEL} (base) and {FT_MODEL} (fine-tuned) on 3 validation examples" in message
    rows = page.locator("#result_list tbody tr")
    assert rows.count() == 2
    assert {r.model_name for r in EvalRun.objects.filter(training_run=run)} == {MODEL, FT_MODEL}

    # The fine-tuned eval's page shows where the model came from.
    page.click(f"#result_list a:text('{EvalRun.objects.get(model_name=FT_MODEL).pk}')")
    lineage = " ".join(page.inner_text("fieldset:has(h2:text('Lineage'))").split())
    assert f"Trained on {version} (hash {version.content_hash})" in lineage


def test_a_manager_records_an_azure_deployment_and_a_viewer_is_not_offered_it(
    live_server, transactional_db, page, settings
):
    settings.AZURE_DEPLOYMENT_HOURLY_USD = ""
    make_user("Manager", username="mara", password="Manager-pw-2026")
    viewer = make_user(None, username="vera", password="Viewer-pw-2026")
    viewer.user_permissions.add(Permission.objects.get(codename="view_trainingrun"))
    version = make_plan_dataset_version(n_validation=3, n_train=2)
    azure_model = f"{MODEL}.ft-0123456789abcdef0123456789abcdef"
    run = TrainingRun.objects.create(
        dataset_version=version,
        base_model=make_priced_base_model(),
        provider="azure",
        status="succeeded",
        job_id="ftjob-azure-browser",
        fine_tuned_model=azure_model,
    )
    run_url = f"/admin/finetune/trainingrun/{run.pk}/change/"

    _log_in(page, live_server, "vera", "Viewer-pw-2026", run_url)
    page.wait_for_selector(".run-deployment")
    facts = " ".join(page.inner_text(".run-deployment").split())
    assert "Deployment none yet" in facts and "Hosting cost unknown per hour" in facts
    assert page.locator("button:text('Record deployment')").count() == 0
    log_out(page)

    _log_in(page, live_server, "mara", "Manager-pw-2026", run_url)
    # No management settings here: the page says what is missing and offers to record a portal deployment.
    assert "AZURE_MANAGEMENT_TOKEN" in page.inner_text(".run-deployment-buttons")
    assert page.locator("button:text('Create deployment')").count() == 0
    page.fill("input[form='record-deployment-form']", "shop-plans-v1")
    page.click("button:text('Record deployment')")
    page.wait_for_selector(".messagelist")
    message = " ".join(page.inner_text(".messagelist").split())
    assert f"Deployment shop-plans-v1 recorded: evaluations of {azure_model} go through it." in message
    assert "shop-plans-v1 (Recorded)" in " ".join(page.inner_text(".run-deployment").split())
    assert page.locator("button:text('Record deployment')").count() == 0
    run.refresh_from_db()
    assert (run.deployment_name, run.deployment_state) == ("shop-plans-v1", "Recorded")


def test_a_manager_creates_an_azure_deployment_through_the_management_api(
    live_server, transactional_db, page, settings
):
    from tests.openai_standin import StandIn
    from tests.openai_standin.azure import AzureStandIn
    from tests.openai_standin.fine_tuning import FineTuningAPI

    make_user("Manager", username="mara", password="Manager-pw-2026")
    version = make_plan_dataset_version(n_validation=3, n_train=2)
    azure_model = f"{MODEL}.ft-0123456789abcdef0123456789abcdef"
    run = TrainingRun.objects.create(
        dataset_version=version,
        base_model=make_priced_base_model(),
        provider="azure",
        status="succeeded",
        job_id="ftjob-azure-create",
        fine_tuned_model=azure_model,
    )
    with StandIn() as api:
        ft = FineTuningAPI().install(api)
        ft.jobs["ftjob-azure-create"] = {"id": "ftjob-azure-create", "fine_tuned_model": azure_model}
        AzureStandIn().install(api, ft)
        settings.AZURE_SUBSCRIPTION_ID, settings.AZURE_RESOURCE_GROUP = "sub-1", "rg-shop"
        settings.AZURE_OPENAI_ACCOUNT, settings.AZURE_MANAGEMENT_TOKEN = "gestima-aoai", "arm-test-token"
        settings.AZURE_MANAGEMENT_URL = api.root_url
        settings.AZURE_DEPLOYMENT_HOURLY_USD = "1.70"

        _log_in(page, live_server, "mara", "Manager-pw-2026", f"/admin/finetune/trainingrun/{run.pk}/change/")
        page.wait_for_selector(".run-deployment")
        assert "Hosting cost $1.70/hour while the deployment exists" in " ".join(
            page.inner_text(".run-deployment").split()
        )
        page.click("button:text('Create deployment')")
        page.wait_for_selector(".messagelist")
        message = " ".join(page.inner_text(".messagelist").split())
        assert f"Deployment gestima-run-{run.pk} requested (Creating)" in message
        assert f"gestima-run-{run.pk} (Creating)" in " ".join(page.inner_text(".run-deployment").split())
        assert api.azure.deployments[f"gestima-run-{run.pk}"]["model"] == azure_model


def test_a_manager_reads_the_few_shot_cost_before_queueing_it(live_server, transactional_db, page):
    make_user("Manager", username="mira", password="Manager-pw-2026")
    make_priced_base_model()
    version = make_plan_dataset_version(n_validation=3, n_train=3)
    _log_in(page, live_server, "mira", "Manager-pw-2026", "/admin/finetune/evalrun/evaluate/")
    page.select_option("#id_task", str(version.dataset.task.pk))
    page.select_option("#id_dataset_version", str(version.pk))
    page.fill("#id_model_name", MODEL)
    page.select_option("#id_model_kind", "few_shot")
    page.fill("#id_few_shot_k", "2")
    page.click("input[value='Queue the evaluation']")

    facts = " ".join(page.inner_text(".few-shot-confirm").split())
    assert "k = 2 per question" in facts and "3 questions" in facts
    assert int(page.inner_text(".few-shot-tokens")) > 0 and page.inner_text(".few-shot-cost").startswith("$")
    assert not EvalRun.objects.exists()  # nothing queued before the confirmation

    page.click(".few-shot-confirm input[value='Queue the evaluation']")
    page.wait_for_url("**/admin/finetune/evalrun/*/change/")
    run = EvalRun.objects.get()
    assert run.model_kind == "few_shot" and run.few_shot["k"] == 2
    worked = " ".join(page.inner_text("fieldset:has(h2:text('Few-shot from reviewed examples'))").split())
    assert "k (worked examples per question) 2" in worked and "dhash_tags_v1" in worked
