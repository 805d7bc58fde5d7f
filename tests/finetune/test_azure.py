"""Azure OpenAI as Azure behaves: background file imports, deployments, the provider following the model, prices.

Everything goes through the real `openai` SDK (AzureOpenAI with azure_endpoint at the stand-in) and real HTTP
to the stand-in's management API; a real RQ worker runs the jobs.
"""

from decimal import Decimal

import openai
import pytest
from django.core.management import call_command

from finetune.models import EvalRun, TrainingRun
from finetune.selectors import provider_for_model
from finetune.services import deployments as deployment_services
from finetune.services.evals import EvalError, eval_run_create, model_prices, training_run_evaluate
from finetune.services.run_cancel import training_run_relaunch
from finetune.services.run_launch import training_run_create, training_run_launch
from finetune.services.run_sync import training_run_sync
from tests.factories import make_base_model
from tests.openai_standin import StandIn
from tests.openai_standin.azure import AzureStandIn
from tests.openai_standin.base import api_error
from tests.openai_standin.fine_tuning import FineTuningAPI

pytestmark = pytest.mark.django_db

BASE = "gpt-4o-mini-2024-07-18"
FILES = "/openai/files"
JOBS = "/openai/fine_tuning/jobs"


@pytest.fixture
def azure_api(settings):
    """The stand-in behaving as Azure; only Azure is configured (no OPENAI_API_KEY)."""
    with StandIn() as api:
        ft = FineTuningAPI().install(api)
        AzureStandIn(import_reads=3).install(api, ft)
        settings.OPENAI_API_KEY = ""
        settings.AZURE_OPENAI_ENDPOINT = api.root_url
        settings.AZURE_OPENAI_API_KEY = "azure-test-key"
        settings.AZURE_OPENAI_API_VERSION = "2025-04-01-preview"
        settings.OPENAI_TIMEOUT_SECONDS = 5
        settings.OPENAI_MAX_ATTEMPTS = 3
        settings.OPENAI_BACKOFF_BASE_SECONDS = 0.01
        settings.OPENAI_BACKOFF_MAX_SECONDS = 0.05
        settings.RUN_FILE_IMPORT_POLL_SECONDS = 0.01
        settings.RUN_FILE_IMPORT_TIMEOUT_SECONDS = 30
        settings.AZURE_DEPLOYMENT_POLL_SECONDS = 0.01
        settings.AZURE_DEPLOYMENT_WAIT_SECONDS = 30
        yield api


@pytest.fixture
def management(settings, azure_api):
    settings.AZURE_SUBSCRIPTION_ID = "sub-1"
    settings.AZURE_RESOURCE_GROUP = "rg-shop"
    settings.AZURE_OPENAI_ACCOUNT = "gestima-aoai"
    settings.AZURE_MANAGEMENT_TOKEN = "arm-test-token"
    settings.AZURE_MANAGEMENT_URL = azure_api.root_url
    return azure_api


@pytest.fixture
def priced_base(db):
    return make_base_model(
        BASE,
        price="3.00",
        input_price_per_1m=Decimal("0.15"),
        output_price_per_1m=Decimal("0.60"),
        fine_tuned_input_price_per_1m=Decimal("0.30"),
        fine_tuned_output_price_per_1m=Decimal("1.20"),
    )


def _launch(run, manager, run_worker, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        run = training_run_launch(run=run, user=manager)
    run_worker("openai")
    run.refresh_from_db()
    return run


def _succeeded_run(version, priced_base, manager, run_worker, django_capture_on_commit_callbacks):
    run = training_run_create(dataset_version=version, base_model=priced_base, user=manager)
    run = _launch(run, manager, run_worker, django_capture_on_commit_callbacks)
    for _ in range(8):
        run = training_run_sync(run=run)
        if run.is_terminal:
            break
    assert run.status == TrainingRun.Status.SUCCEEDED, (run.status, run.error_message)
    return run


# --- the stand-in behaves as Azure ---------------------------------------------------------------


def test_the_standin_refuses_what_azure_refuses(azure_api):
    plain = openai.OpenAI(api_key="azure-test-key", base_url=azure_api.root_url + "/v1", max_retries=0)
    with pytest.raises(openai.NotFoundError):  # no /openai/ prefix
        plain.fine_tuning.jobs.list()
    wrong_key = openai.AzureOpenAI(
        azure_endpoint=azure_api.root_url, api_key="wrong", api_version="2025-04-01-preview", max_retries=0
    )
    with pytest.raises(openai.AuthenticationError):
        wrong_key.fine_tuning.jobs.list()
    client = openai.AzureOpenAI(
        azure_endpoint=azure_api.root_url, api_key="azure-test-key", api_version="2025-04-01-preview", max_retries=0
    )
    with pytest.raises(openai.NotFoundError) as refused:
        client.chat.completions.create(model="no-such-deployment", messages=[{"role": "user", "content": "hi"}])
    assert refused.value.code == "DeploymentNotFound"


# --- file imports --------------------------------------------------------------------------------


def test_the_first_launch_waits_for_the_file_import_instead_of_failing(
    azure_api, version, priced_base, manager, run_worker, django_capture_on_commit_callbacks
):
    run = training_run_create(dataset_version=version, base_model=priced_base, user=manager)
    assert run.provider == "azure"  # the configured default on an Azure-only install
    run = _launch(run, manager, run_worker, django_capture_on_commit_callbacks)
    assert run.status != TrainingRun.Status.FAILED, run.error_message
    assert run.job_id and run.error_code == ""
    assert len(azure_api.calls_to("POST", JOBS)) == 1  # created once, after the import, never refused
    assert azure_api.fine_tuning.files[run.training_file_id]["status"] == "processed"
    notes = [step.get("note", "") for step in run.timeline]
    assert any(note.startswith("files imported by the provider after") for note in notes), notes


def test_an_import_that_takes_too_long_fails_clearly_and_a_relaunch_reuses_the_files(
    azure_api, settings, version, priced_base, manager, run_worker, django_capture_on_commit_callbacks
):
    azure_api.fine_tuning.import_reads = 1000
    settings.RUN_FILE_IMPORT_TIMEOUT_SECONDS = 0
    run = training_run_create(dataset_version=version, base_model=priced_base, user=manager)
    run = _launch(run, manager, run_worker, django_capture_on_commit_callbacks)
    assert run.status == TrainingRun.Status.FAILED
    assert run.error_code == "file_import_timeout"
    assert "had not finished importing the uploaded files" in run.error_message
    assert "Relaunch the run: it reuses the uploaded files" in run.error_message
    assert not azure_api.calls_to("POST", JOBS)
    uploads = len(azure_api.calls_to("POST", FILES))

    # Azure finishes the import meanwhile; the relaunch uploads nothing and creates the job.
    for file_id in list(azure_api.fine_tuning.importing):
        azure_api.fine_tuning.importing[file_id] = 1
    settings.RUN_FILE_IMPORT_TIMEOUT_SECONDS = 30
    again = training_run_relaunch(run=run, user=manager)
    again = _launch(again, manager, run_worker, django_capture_on_commit_callbacks)
    assert again.job_id and again.status != TrainingRun.Status.FAILED
    assert len(azure_api.calls_to("POST", FILES)) == uploads
    assert again.training_file_id == run.training_file_id


def test_a_failed_import_fails_the_run_with_the_providers_words(
    azure_api, version, priced_base, manager, run_worker, django_capture_on_commit_callbacks
):
    original = azure_api.fine_tuning.files_retrieve

    def broken(request):
        answer = original(request)
        if isinstance(answer, dict):
            answer.update(status="error", status_details="Line 3: invalid JSON")
        return answer

    azure_api.routes = [(m, p, broken if h == original else h) for m, p, h in azure_api.routes]
    run = training_run_create(dataset_version=version, base_model=priced_base, user=manager)
    run = _launch(run, manager, run_worker, django_capture_on_commit_callbacks)
    assert run.status == TrainingRun.Status.FAILED and run.error_code == "file_import_failed"
    assert "Line 3: invalid JSON" in run.error_message


# --- deployments -------------------------------------------------------------------------------


def test_a_succeeded_run_is_deployed_through_the_management_api_and_evaluated_through_it(
    management, version, priced_base, manager, run_worker, django_capture_on_commit_callbacks, settings
):
    settings.AZURE_DEPLOYMENT_HOURLY_USD = "1.70"
    run = _succeeded_run(version, priced_base, manager, run_worker, django_capture_on_commit_callbacks)
    assert ".ft-" in run.fine_tuned_model  # Azure's naming
    assert deployment_services.deployment_needed(run)

    # Before a deployment exists, evaluating the model by its id is refused (it would answer DeploymentNotFound).
    with pytest.raises(EvalError, match="answers only through a deployment"):
        training_run_evaluate(run=run, user=manager)
    assert not EvalRun.objects.exists()

    with django_capture_on_commit_callbacks(execute=True):
        run = deployment_services.training_run_deploy(run=run, user=manager)
    assert (run.deployment_name, run.deployment_state) == (f"gestima-run-{run.pk}", "Creating")
    put = management.calls_to(
        "PUT",
        "/subscriptions/sub-1/resourceGroups/rg-shop/providers/"
        "Microsoft.CognitiveServices/accounts/gestima-aoai/deployments/[^/]+",
    )[0]
    assert put.headers["authorization"] == "Bearer arm-test-token"
    assert put.query["api-version"] == ["2024-10-01"]
    assert put.json() == {
        "sku": {"name": "standard", "capacity": 1},
        "properties": {"model": {"format": "OpenAI", "name": run.fine_tuned_model, "version": "1"}},
    }
    run_worker("openai")
    run.refresh_from_db()
    assert run.deployment_state == "Succeeded"

    # The base model answers through a deployment named after it (the portal's default).
    management.azure.add_deployment(BASE, BASE)
    with django_capture_on_commit_callbacks(execute=True):
        evals, created = training_run_evaluate(run=run, user=manager)
    run_worker("openai")
    base_eval, ft_eval = (EvalRun.objects.get(pk=e.pk) for e in evals)
    assert (ft_eval.provider, ft_eval.deployment_name) == ("azure", run.deployment_name)
    assert ft_eval.status == EvalRun.Status.DONE, ft_eval.error
    assert base_eval.status == EvalRun.Status.DONE, base_eval.error
    assert management.calls_to("POST", f"/openai/deployments/{run.deployment_name}/chat/completions")
    # Priced at the base's fine-tuned prices: 100 input + 20 output tokens per call.
    per_call = (100 * Decimal("0.30") + 20 * Decimal("1.20")) / Decimal(1_000_000)
    assert ft_eval.cost_usd == per_call * ft_eval.total


def test_without_management_settings_a_portal_deployment_is_recorded_and_used(
    azure_api, version, priced_base, manager, run_worker, django_capture_on_commit_callbacks
):
    run = _succeeded_run(version, priced_base, manager, run_worker, django_capture_on_commit_callbacks)
    assert "AZURE_MANAGEMENT_TOKEN" in deployment_services.deployment_management_missing(run)
    with pytest.raises(Exception, match="Azure management is not configured"):
        deployment_services.training_run_deploy(run=run, user=manager)
    azure_api.azure.add_deployment("shop-plans-v1", run.fine_tuned_model)
    run = deployment_services.training_run_deployment_record(run=run, user=manager, name="shop-plans-v1")
    assert (run.deployment_name, run.deployment_state) == ("shop-plans-v1", "Recorded")
    assert model_prices("shop-plans-v1") == (Decimal("0.30"), Decimal("1.20"))

    with django_capture_on_commit_callbacks(execute=True):
        ft_eval = eval_run_create(
            task=version.dataset.task,
            model_name=run.fine_tuned_model,
            model_kind="fine_tuned",
            dataset_version=version,
            user=manager,
        )
    run_worker("openai")
    ft_eval.refresh_from_db()
    assert (ft_eval.provider, ft_eval.deployment_name, ft_eval.training_run_id) == ("azure", "shop-plans-v1", run.pk)
    assert ft_eval.status == EvalRun.Status.DONE and ft_eval.done_count + ft_eval.error_count == ft_eval.total


def test_the_run_page_records_a_portal_deployment_and_shows_its_hosting_cost(
    azure_api, client, version, priced_base, manager, run_worker, django_capture_on_commit_callbacks, settings
):
    run = _succeeded_run(version, priced_base, manager, run_worker, django_capture_on_commit_callbacks)
    client.force_login(manager)
    page = client.get(f"/admin/finetune/trainingrun/{run.pk}/change/").content.decode()
    assert "Record deployment" in page
    assert "<th>Hosting cost</th><td>unknown per hour" in page  # not $0
    assert 'form="record-deployment-form"' in page
    # The deployment forms sit after the change form, never inside it.
    assert page.index('<form id="record-deployment-form"') > page.index("</form>", page.index('id="trainingrun_form"'))
    response = client.post(
        f"/admin/finetune/trainingrun/{run.pk}/record-deployment/", {"name": "shop-plans-v1"}, follow=True
    )
    text = response.content.decode()
    assert "Deployment shop-plans-v1 recorded" in text and "shop-plans-v1</code> (Recorded)" in text
    settings.AZURE_DEPLOYMENT_HOURLY_USD = "1.70"
    assert "$1.70/hour" in client.get(f"/admin/finetune/trainingrun/{run.pk}/change/").content.decode()


# --- the provider follows the model ----------------------------------------------------------------


def test_evaluate_on_an_azure_only_install_uses_azure_for_the_runs_model(
    azure_api, version, priced_base, manager, run_worker, django_capture_on_commit_callbacks, capsys
):
    run = _succeeded_run(version, priced_base, manager, run_worker, django_capture_on_commit_callbacks)
    azure_api.azure.add_deployment("shop-plans-v1", run.fine_tuned_model)
    deployment_services.training_run_deployment_record(run=run, user=manager, name="shop-plans-v1")
    assert provider_for_model(run.fine_tuned_model) == "azure"
    assert provider_for_model("shop-plans-v1") == "azure"
    call_command("evaluate", run.fine_tuned_model, str(version.pk), "--kind", "fine_tuned", "--foreground")
    out = capsys.readouterr().out
    assert "on azure through deployment shop-plans-v1" in out
    eval_run = EvalRun.objects.get()
    assert eval_run.provider == "azure" and eval_run.status == EvalRun.Status.DONE, eval_run.error
    assert "OPENAI_API_KEY" not in out


# --- nothing answered ----------------------------------------------------------------------------------


def test_an_eval_run_in_which_no_example_was_answered_ends_failed_with_the_reason(
    azure_api, version, priced_base, manager, run_worker, django_capture_on_commit_callbacks
):
    azure_api.azure.add_deployment(BASE, BASE)
    azure_api.azure.answer = lambda body: api_error(404, "The model `x` does not exist", code="model_not_found")
    with django_capture_on_commit_callbacks(execute=True):
        eval_run = eval_run_create(
            task=version.dataset.task, model_name=BASE, model_kind="base", dataset_version=version, user=manager
        )
    run_worker("openai")
    eval_run.refresh_from_db()
    assert eval_run.status == EvalRun.Status.FAILED
    assert eval_run.done_count == 0 and eval_run.error_count == eval_run.total
    assert eval_run.error.startswith(
        f"No example was answered: {eval_run.total} of {eval_run.total} calls failed with "
        "model_not_found: The model `x` does not exist"
    )


# --- prices ----------------------------------------------------------------------------------------


def test_azure_fine_tuned_names_cost_their_bases_fine_tuned_prices(priced_base):
    fine_tuned = (Decimal("0.30"), Decimal("1.20"))
    assert model_prices(f"{BASE}.ft-0123456789abcdef0123456789abcdef") == fine_tuned
    assert model_prices("gpt-4o-mini.ft-0123456789abcdef") == fine_tuned  # undated base: its one dated row
    assert model_prices(f"ft:{BASE}:shop::abc123") == fine_tuned
    assert model_prices(BASE) == (Decimal("0.15"), Decimal("0.60"))
    assert model_prices("someone-elses-deployment") is None  # unknown, never $0


def test_on_openai_too_an_eval_run_with_no_answer_fails_and_one_answer_is_enough_to_finish(
    settings, version, manager, run_worker, django_capture_on_commit_callbacks
):
    from tests.openai_standin.chat import install_chat

    import itertools

    answers = itertools.chain(
        [api_error(404, "The model `gpt-x` does not exist", code="model_not_found")] * 2, itertools.repeat("{}")
    )
    with StandIn() as api:
        install_chat(api, lambda body: next(answers))
        settings.OPENAI_API_KEY, settings.OPENAI_BASE_URL = "test-key", api.base_url
        with django_capture_on_commit_callbacks(execute=True):
            eval_run = eval_run_create(
                task=version.dataset.task,
                model_name="gpt-x",
                model_kind="base",
                dataset_version=version,
                user=manager,
                concurrency=1,
            )
        run_worker("openai")
        eval_run.refresh_from_db()
        assert eval_run.provider == "openai" and eval_run.total == 2
        assert eval_run.status == EvalRun.Status.FAILED
        assert "No example was answered: 2 of 2 calls failed with model_not_found" in eval_run.error
        # Resumed (API errors are asked again): one answer, even a wrong one, and the run finishes.
        from finetune.services.evals import eval_run_resume

        with django_capture_on_commit_callbacks(execute=True):
            eval_run_resume(eval_run=eval_run, user=manager)
        run_worker("openai")
        eval_run.refresh_from_db()
        assert eval_run.status == EvalRun.Status.DONE and eval_run.error == ""


def test_a_promoted_azure_model_serves_estimates_through_its_deployment(azure_api, manager):
    import json

    from finetune.services.estimates import estimate_create
    from finetune.services.promotion import model_version_promote
    from tests.factories import make_drawing, technology_target
    from tests.finetune.evalkit import MODEL, make_done_eval_run, make_plan_dataset_version, make_priced_base_model
    from tests.openai_standin.chat import part_number

    make_base_model(
        MODEL, price="25", fine_tuned_input_price_per_1m=Decimal("3.75"), fine_tuned_output_price_per_1m=Decimal("15")
    )
    make_priced_base_model()
    azure_model = f"{MODEL}.ft-0123456789abcdef0123456789abcdef"
    azure_api.azure.add_deployment("shop-plans-v1", azure_model)
    azure_api.azure.answer = lambda body: json.dumps(technology_target(part_number(body), minutes=20.0))
    version = make_plan_dataset_version(n_validation=3, n_train=0)
    eval_run = make_done_eval_run(version, model_name=azure_model, kind="fine_tuned")
    EvalRun.objects.filter(pk=eval_run.pk).update(provider="azure", deployment_name="shop-plans-v1")
    promoted = model_version_promote(eval_run=eval_run, user=manager, override_reason="azure estimates test")
    assert (promoted.provider, promoted.deployment_name) == ("azure", "shop-plans-v1")

    estimate = estimate_create(drawing=make_drawing(part_number="NEW-200"), task=version.dataset.task, user=manager)
    assert estimate.error == "" and estimate.model_name == azure_model
    assert estimate.output["operations"][0]["machine_time_min_per_piece"] == 20.0
    assert azure_api.calls_to("POST", "/openai/deployments/shop-plans-v1/chat/completions")
    assert estimate.cost_usd == (100 * Decimal("3.75") + 20 * Decimal("15")) / Decimal(1_000_000)
