"""Estimates by the active model (read per request), corrections that become pending examples, the API's auth."""

import base64
import json

import pytest
from django.core.exceptions import PermissionDenied

from curation.models import Drawing, Example, GroundTruth
from curation.services.examples import examples_build
from curation.services.ground_truth import ground_truth_material_set
from curation.services.production import production_records_import
from curation.services.tasks import TargetInvalid
from finetune.models import Estimate
from finetune.services.estimates import EstimateError, estimate_correct, estimate_create
from finetune.services.promotion import model_version_promote
from tests.factories import make_drawing, make_task, make_user, technology_target
from tests.finetune.evalkit import (
    FT_MODEL,
    MODEL,
    make_priced_base_model,
    make_plan_dataset_version,
    make_done_eval_run,
    use_standin,
)
from tests.openai_standin import StandIn
from tests.openai_standin.chat import install_chat, part_number

pytestmark = pytest.mark.django_db
PASSWORD = "pw-Gestima-1"


@pytest.fixture
def manager(roles):
    return make_user("Manager")


@pytest.fixture
def standin(settings):
    """Answers every drawing with a plan whose turning time tells which model was asked."""
    with StandIn() as api:
        install_chat(
            api,
            lambda body: json.dumps(
                technology_target(part_number(body), minutes=20.0 if body["model"].startswith("ft:") else 10.0)
            ),
        )
        use_standin(settings, api)
        yield api


def _promote(manager, version, *, model=MODEL, kind="base"):
    # A few examples keep these tests fast; below the policy's minimum, so the promotion is an override.
    return model_version_promote(
        eval_run=make_done_eval_run(version, model_name=model, kind=kind),
        user=manager,
        override_reason="estimates test on a small evaluation set",
    )


def test_estimates_follow_the_registry_without_a_restart(manager, standin):
    make_priced_base_model()
    version = make_plan_dataset_version(n_validation=3, n_train=0)
    task = version.dataset.task
    drawing = make_drawing(part_number="NEW-100")
    _promote(manager, version)

    first = estimate_create(drawing=drawing, task=task, user=manager)
    assert first.error == "" and first.model_name == MODEL and first.provider == "openai"
    assert (
        first.output["part_number"] == "NEW-100" and first.output["operations"][0]["machine_time_min_per_piece"] == 10.0
    )
    assert first.input_tokens == 100 and first.cost_usd > 0

    _promote(manager, version, model=FT_MODEL, kind="fine_tuned")  # the registry switches; nothing reloads
    second = estimate_create(drawing=drawing, task=task, user=manager)
    assert second.model_name == FT_MODEL and second.provider == "openai_ft"
    assert second.output["operations"][0]["machine_time_min_per_piece"] == 20.0
    bodies = [c.json() for c in standin.calls_to("POST", "/chat/completions")]
    assert [b["model"] for b in bodies] == [MODEL, FT_MODEL]
    assert bodies[0]["messages"][0]["content"] == task.system_prompt  # base model: full prompt
    assert bodies[1]["messages"][0]["content"] == task.compact_prompt  # fine-tuned: compact prompt
    assert bodies[1]["messages"][1]["content"][1]["image_url"]["url"].startswith("data:image/png;base64,")


def test_no_active_model_is_a_clear_error(manager):
    with pytest.raises(EstimateError, match="no active model"):
        estimate_create(drawing=make_drawing(), task=make_task(), user=manager)


def test_a_correction_becomes_a_pending_example(manager, standin):
    version = make_plan_dataset_version(n_validation=2, n_train=0)
    task = version.dataset.task
    _promote(manager, version)
    drawing = make_drawing(part_number="NEW-200")
    estimate = estimate_create(drawing=drawing, task=task, user=manager)
    reviewer = make_user("Reviewer")

    with pytest.raises(TargetInvalid, match=r"\$\.operations\[0\]\.machine_time_min_per_piece"):
        bad = technology_target("NEW-200")
        bad["operations"][0]["machine_time_min_per_piece"] = "fast"
        estimate_correct(estimate=estimate, user=reviewer, target_text=json.dumps(bad))
    assert not Example.objects.filter(source="correction").exists()

    corrected = technology_target("NEW-200", minutes=14.0)
    estimate = estimate_correct(estimate=estimate, user=reviewer, target_text=json.dumps(corrected))
    example = estimate.example
    assert example.status == Example.Status.PENDING and example.source == Example.Source.CORRECTION
    assert json.loads(example.target) == corrected and example.drawing == drawing and example.task == task
    assert example.messages[0]["content"] == task.compact_prompt
    assert example.messages[1]["content"][1]["image_url"]["url"].startswith("page:")
    assert estimate.corrected_by == reviewer and json.loads(estimate.corrected_target) == corrected
    # Correcting twice with the same answer does not duplicate the example.
    again = estimate_correct(estimate=estimate, user=reviewer, target_text=json.dumps(corrected))
    assert again.example_id == example.pk and Example.objects.filter(source="correction").count() == 1

    with pytest.raises(PermissionDenied):
        estimate_correct(estimate=estimate, user=make_user(None), target_text=json.dumps(corrected))


def test_a_correction_saying_what_the_built_example_says_is_that_example(manager, standin):
    """Curation builds the example, finetune files the correction: one message builder and one content hash, so
    the same drawing and answer are the same example, with non-ASCII text in the prompt and the target too."""
    version = make_plan_dataset_version(n_validation=2, n_train=0)
    task = version.dataset.task
    task.compact_prompt = "Technologieplan als JSON: Ø 12 ±0,05, Kühlung."
    task.user_prompt_template = "Drawing of part {part_number} – Zeichnung mit Ø 12 ±0,05."
    task.save()
    _promote(manager, version)
    drawing = make_drawing(part_number="NEW-300", pages=2)
    production_records_import(
        text="part_number,order_id,machine,operation,pieces,machine_time_min_per_piece,setup_min\n"
        "NEW-300,O1,NZX 2000,turning,10,6.5,40\n"
    )
    ground_truth_material_set(ground_truth=GroundTruth.objects.get(part_number="NEW-300"), material="1.4301 Kühlung")
    examples_build(task=task, drawings=[drawing])
    built = Example.objects.get(task=task, drawing=drawing)

    estimate = estimate_create(drawing=drawing, task=task, user=manager)
    asked = standin.calls_to("POST", "/chat/completions")[-1].json()["messages"]
    assert asked[1]["content"][0]["text"] == built.messages[1]["content"][0]["text"]  # one builder for both
    assert len(asked[1]["content"]) == len(built.messages[1]["content"]) == 3  # text + both pages
    corrected = estimate_correct(
        estimate=estimate, user=make_user("Reviewer"), target_text=json.dumps(json.loads(built.target), indent=2)
    )
    assert corrected.example_id == built.pk
    assert Example.objects.filter(task=task, drawing=drawing).count() == 1


def _basic(user):
    return {"HTTP_AUTHORIZATION": "Basic " + base64.b64encode(f"{user.username}:{PASSWORD}".encode()).decode()}


def test_api_requires_credentials_and_the_permission(client, manager, standin):
    version = make_plan_dataset_version(n_validation=2, n_train=0)
    _promote(manager, version)
    drawing = make_drawing(part_number="API-1")
    body = json.dumps({"drawing_id": drawing.pk})

    assert client.post("/api/estimates", body, content_type="application/json").status_code == 401
    wrong = {"HTTP_AUTHORIZATION": "Basic " + base64.b64encode(f"{manager.username}:nope".encode()).decode()}
    assert client.post("/api/estimates", body, content_type="application/json", **wrong).status_code == 401
    reviewer = make_user("Reviewer")
    assert client.post("/api/estimates", body, content_type="application/json", **_basic(reviewer)).status_code == 403
    assert not Estimate.objects.exists()

    response = client.post("/api/estimates", body, content_type="application/json", **_basic(manager))
    assert response.status_code == 201, response.content
    data = response.json()
    assert data["drawing_id"] == drawing.pk and data["model"] == MODEL and data["provider"] == "openai"
    assert data["output"]["part_number"] == "API-1"
    assert Estimate.objects.get(pk=data["id"]).created_by == manager


def test_api_session_needs_csrf_and_unrendered_drawings_wait(manager, standin):
    from django.test import Client

    version = make_plan_dataset_version(n_validation=2, n_train=0)
    _promote(manager, version)
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(manager)
    drawing = make_drawing(part_number="API-2")
    response = browser.post("/api/estimates", json.dumps({"drawing_id": drawing.pk}), content_type="application/json")
    assert response.status_code == 403 and "CSRF" in response.json()["error"]

    browser.get("/admin/")  # sets the CSRF cookie, as the admin page does for a browser
    token = browser.cookies["csrftoken"].value
    response = browser.post(
        "/api/estimates",
        json.dumps({"drawing_id": drawing.pk}),
        content_type="application/json",
        HTTP_X_CSRFTOKEN=token,
    )
    assert response.status_code == 201 and response.json()["part_number"] == "API-2"

    pending = make_drawing(part_number="API-3", status=Drawing.Status.UPLOADED)
    response = browser.post(
        "/api/estimates", json.dumps({"drawing_id": pending.pk}), content_type="application/json", **_basic(manager)
    )
    assert response.status_code == 409 and response.json()["drawing_id"] == pending.pk
    assert len(standin.calls_to("POST", "/chat/completions")) == 1  # only the session estimate above


@pytest.mark.corpus
def test_api_pdf_upload_is_accepted_then_rendered_and_estimated_by_a_worker(
    client, manager, standin, corpus, run_worker, django_capture_on_commit_callbacks
):
    from django.core.files.uploadedfile import SimpleUploadedFile

    version = make_plan_dataset_version(n_validation=2, n_train=0)
    _promote(manager, version)
    pdf = corpus / "drawings" / "10198536.pdf"
    upload = SimpleUploadedFile("10198536.pdf", pdf.read_bytes(), content_type="application/pdf")
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post("/api/estimates", {"file": upload, "task": "technology_builder"}, **_basic(manager))
    assert response.status_code == 202, response.content
    accepted = response.json()
    assert response["Location"] == accepted["status_url"] == f"/api/estimates/{accepted['id']}"
    assert accepted["status"] == "queued" and accepted["output"] is None
    drawing = Drawing.objects.get(pk=accepted["drawing_id"])
    assert drawing.status == Drawing.Status.UPLOADED  # nothing rendered inside the request
    assert not standin.calls_to("POST", "/chat/completions")

    waiting = client.get(response["Location"], **_basic(manager))
    assert waiting.status_code == 200 and waiting.json()["status"] == "queued" and waiting["Retry-After"]
    run_worker("default")
    answer = client.get(response["Location"], **_basic(manager))
    assert answer.status_code == 200 and answer["Content-Type"] == "application/json"
    body = answer.json()
    assert body["status"] == "done" and body["output"]["part_number"] and body["model"] == MODEL
    assert body["progress"] == {"done": 2, "total": 2, "stage": None}
    drawing.refresh_from_db()
    assert drawing.status == Drawing.Status.RENDERED and drawing.pages.exists()
    sent = standin.calls_to("POST", "/chat/completions")[-1].json()
    assert sent["messages"][1]["content"][1]["image_url"]["url"].startswith("data:image/")
    assert Estimate.objects.count() == 1

    not_pdf = SimpleUploadedFile("notes.pdf", b"hello", content_type="application/pdf")
    assert client.post("/api/estimates", {"file": not_pdf}, **_basic(manager)).status_code == 400


def test_api_pdf_is_refused_at_once_when_no_model_could_answer(client, manager):
    from django.core.files.uploadedfile import SimpleUploadedFile

    make_task(slug="technology_builder")
    upload = SimpleUploadedFile("a.pdf", b"%PDF-1.4\n" + b"0" * 100, content_type="application/pdf")
    response = client.post("/api/estimates", {"file": upload, "task": "technology_builder"}, **_basic(manager))
    assert response.status_code == 409 and "no active model" in response.json()["error"]
    assert not Drawing.objects.exists() and not Estimate.objects.exists()  # nothing stored, nothing queued


def test_api_same_pdf_posted_twice_makes_one_job_and_status_needs_the_permission(
    client, manager, standin, run_worker, django_capture_on_commit_callbacks
):
    import django_rq
    from django.core.files.uploadedfile import SimpleUploadedFile

    version = make_plan_dataset_version(n_validation=2, n_train=0)
    _promote(manager, version)
    content = b"%PDF-1.4\n" + b"0" * 100  # no page: the worker's render fails, in words on the estimate
    ids = []
    for _ in range(2):
        with django_capture_on_commit_callbacks(execute=True):
            response = client.post(
                "/api/estimates",
                {"file": SimpleUploadedFile("a.pdf", content, "application/pdf"), "task": "technology_builder"},
                **_basic(manager),
            )
        assert response.status_code == 202
        ids.append(response.json()["id"])
    assert ids[0] == ids[1] and django_rq.get_queue("default").count == 1

    reviewer = make_user("Reviewer", password=PASSWORD)
    assert client.get(f"/api/estimates/{ids[0]}", **_basic(reviewer)).status_code == 403
    assert client.get(f"/api/estimates/{ids[0]}").status_code == 401
    assert client.get("/api/estimates/999999", **_basic(manager)).status_code == 404
    run_worker("default")
    body = client.get(f"/api/estimates/{ids[0]}", **_basic(manager)).json()
    assert body["status"] == "failed" and "could not be rendered" in body["error"]
    assert not standin.calls_to("POST", "/chat/completions")


def test_admin_correction_form_makes_a_pending_example(client, manager, standin):
    version = make_plan_dataset_version(n_validation=2, n_train=0)
    _promote(manager, version)
    estimate = estimate_create(drawing=make_drawing(part_number="ADM-1"), task=version.dataset.task, user=manager)
    client.force_login(make_user("Reviewer"))
    url = f"/admin/finetune/estimate/{estimate.pk}/correct/"
    page = client.get(url)
    assert page.status_code == 200 and b"ADM-1" in page.content
    bad = client.post(url, {"target_text": '{"part_number": "ADM-1"}'})
    assert bad.status_code == 200 and b"required property" in bad.content
    assert not Example.objects.filter(source="correction").exists()
    good = client.post(url, {"target_text": json.dumps(technology_target("ADM-1", minutes=9.5))})
    assert good.status_code == 302
    estimate.refresh_from_db()
    assert estimate.example.status == "pending" and estimate.example.source == "correction"
    # Reviewers may correct but not ask the model.
    assert client.get("/admin/finetune/estimate/estimate/").status_code == 403


def test_admin_estimate_form_and_lists_for_a_manager(client, manager, standin):
    version = make_plan_dataset_version(n_validation=2, n_train=0)
    mv = _promote(manager, version)
    drawing = make_drawing(part_number="ADM-2")
    client.force_login(manager)
    assert client.get("/admin/finetune/estimate/add/")["Location"].endswith("/estimate/estimate/")
    form = client.get(f"/admin/finetune/estimate/estimate/?drawing={drawing.pk}")
    assert form.status_code == 200 and b"Ask the active model" in form.content
    response = client.post(
        "/admin/finetune/estimate/estimate/", {"task": version.dataset.task.pk, "drawing": drawing.pk}
    )
    estimate = Estimate.objects.get(drawing=drawing)
    assert response.status_code == 302 and estimate.model_version == mv
    page = client.get(f"/admin/finetune/estimate/{estimate.pk}/change/")
    assert page.status_code == 200 and b"ADM-2" in page.content and b"Correct this estimate" in page.content
    for url in ("/admin/finetune/estimate/", "/admin/finetune/modelversion/", "/admin/finetune/evalrun/"):
        assert client.get(url).status_code == 200, url


def test_estimate_action_on_the_drawing_list(client, manager, standin):
    make_priced_base_model()
    version = make_plan_dataset_version(n_validation=3, n_train=0)
    drawing = make_drawing(part_number="ACT-7")
    url = "/admin/curation/drawing/"
    client.force_login(manager)
    assert '<option value="estimate_drawings">' in client.get(url).content.decode()  # Managers are offered it
    # No active model yet: a message says why, nothing is made, no error page.
    response = client.post(url, {"action": "estimate_drawings", "_selected_action": [drawing.pk]}, follow=True)
    assert response.status_code == 200 and "no active model" in response.content.decode()
    assert not Estimate.objects.exists()

    _promote(manager, version)
    response = client.post(url, {"action": "estimate_drawings", "_selected_action": [drawing.pk]}, follow=True)
    assert "1 estimate(s) made" in response.content.decode()
    assert Estimate.objects.get().drawing == drawing

    # Reviewers may not ask for estimates: the action is not on their list, and posting it anyway makes nothing.
    reviewer = make_user("Reviewer")
    client.force_login(reviewer)
    listing = client.get(url)
    assert listing.status_code == 200 and "estimate_drawings" not in listing.content.decode()
    response = client.post(url, {"action": "estimate_drawings", "_selected_action": [drawing.pk]}, follow=True)
    assert response.status_code == 200 and Estimate.objects.count() == 1


def test_an_estimate_by_a_model_without_prices_costs_unknown_not_zero(client, manager, standin):
    version = make_plan_dataset_version(n_validation=2, n_train=0)
    _promote(manager, version, model="my-local-model")
    drawing = make_drawing(part_number="UNK-1")
    response = client.post(
        "/api/estimates", json.dumps({"drawing_id": drawing.pk}), content_type="application/json", **_basic(manager)
    )
    assert response.status_code == 201 and response.json()["cost_usd"] is None
    estimate = Estimate.objects.get(drawing=drawing)
    assert estimate.input_tokens == 100 and estimate.cost_usd is None
    client.force_login(manager)
    listing = client.get("/admin/finetune/estimate/").content.decode()
    assert '<td class="field-cost_display">unknown</td>' in listing and "0.000000" not in listing
