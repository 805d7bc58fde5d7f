"""The estimates API under hostile use: password guessing is locked out (429), scripts use API tokens (no
password hash per call), every answer is JSON, drawing_id is an integer, and a failed estimate stores nothing."""

import base64
import json
import re

import pytest
from django.contrib.auth.hashers import MD5PasswordHasher
from django.core.files.uploadedfile import SimpleUploadedFile

from finetune.models import ApiToken, Estimate
from finetune.services.api_tokens import api_token_create
from finetune.services.promotion import model_version_promote
from tests.factories import make_drawing, make_user, technology_target
from tests.finetune.evalkit import make_done_eval_run, make_plan_dataset_version, use_standin
from tests.openai_standin import StandIn
from tests.openai_standin.base import api_error
from tests.openai_standin.chat import install_chat, part_number

pytestmark = pytest.mark.django_db
PASSWORD = "pw-Gestima-1"
URL = "/api/estimates"


class CountingHasher(MD5PasswordHasher):
    """The tests' MD5 hasher, counting how often a password is checked."""

    checks = 0

    def verify(self, password, encoded):
        type(self).checks += 1
        return super().verify(password, encoded)


@pytest.fixture
def manager(roles):
    return make_user("Manager")


@pytest.fixture
def answers():
    """What the stand-in answers: a plan for the part, unless a test puts an HTTP error (or a text) here."""
    return {"error": None}


@pytest.fixture
def ready(settings, manager, answers):
    """A promoted model answering through the stand-in; returns a rendered drawing to estimate."""
    with StandIn() as api:
        install_chat(api, lambda body: answers["error"] or json.dumps(technology_target(part_number(body))))
        use_standin(settings, api)
        version = make_plan_dataset_version(n_validation=2, n_train=0)
        model_version_promote(
            eval_run=make_done_eval_run(version),
            user=manager,
            override_reason="two examples are enough to serve the API in these tests",
        )
        yield make_drawing(part_number="API-9")


def basic(username, password):
    return {"HTTP_AUTHORIZATION": "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()}


def post(client, body, **headers):
    return client.post(URL, json.dumps(body), content_type="application/json", **headers)


def test_basic_auth_guessing_is_locked_out_per_user_and_per_address(client, manager, ready, settings):
    body = {"drawing_id": ready.pk}
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        assert post(client, body, **basic(manager.username, "guess")).status_code == 401
    locked = post(client, body, **basic(manager.username, "guess"))
    assert locked.status_code == 429 and "locked out" in locked.json()["error"] and locked["Retry-After"]
    # Now even the right password is refused, without hashing it, and from another address too (per user).
    CountingHasher.checks = 0
    settings.PASSWORD_HASHERS = ["tests.finetune.test_api_hardening.CountingHasher"]
    response = post(client, body, **basic(manager.username, PASSWORD), REMOTE_ADDR="10.9.9.9")
    assert response.status_code == 429 and response["Content-Type"] == "application/json"
    assert CountingHasher.checks == 0
    assert not Estimate.objects.exists()


def test_guessing_many_usernames_from_one_address_is_locked_out(client, ready, settings, roles):
    other = make_user("Manager", username="other-manager")
    for i in range(settings.AXES_FAILURE_LIMIT):
        post(client, {"drawing_id": ready.pk}, **basic(f"nobody-{i}", "guess"), REMOTE_ADDR="10.1.1.1")
    response = post(client, {"drawing_id": ready.pk}, **basic(other.username, PASSWORD), REMOTE_ADDR="10.1.1.1")
    assert response.status_code == 429
    # Another address with the right password is still served.
    assert (
        post(client, {"drawing_id": ready.pk}, **basic(other.username, PASSWORD), REMOTE_ADDR="10.2.2.2").status_code
        == 201
    )


def test_admin_login_form_is_locked_out_after_repeated_failures(client, manager, settings):
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        response = client.post("/admin/login/", {"username": manager.username, "password": "guess"})
        assert response.status_code == 200  # the form again, with its error
    response = client.post("/admin/login/", {"username": manager.username, "password": "guess"})
    assert response.status_code == 429 and "Too many failed logins" in response.content.decode()
    response = client.post("/admin/login/", {"username": manager.username, "password": PASSWORD})
    assert response.status_code == 429 and "_auth_user_id" not in client.session


def test_api_token_made_in_the_admin_authenticates_without_a_password_hash(client, manager, ready, settings):
    admin_client = client.__class__()
    admin_client.force_login(make_user(superuser=True, username="root"))
    response = admin_client.post(
        "/admin/finetune/apitoken/add/", {"user": manager.pk, "name": "nightly script"}, follow=True
    )
    shown = " ".join(str(m) for m in response.context["messages"])
    key = re.search(r"(gst_\S+)", shown).group(1)
    token = ApiToken.objects.get()
    assert token.user == manager and key not in (token.key_hash, token.key_prefix) and key.startswith(token.key_prefix)
    assert key not in admin_client.get(f"/admin/finetune/apitoken/{token.pk}/change/").content.decode()

    CountingHasher.checks = 0
    settings.PASSWORD_HASHERS = ["tests.finetune.test_api_hardening.CountingHasher"]
    response = post(client, {"drawing_id": ready.pk}, HTTP_AUTHORIZATION=f"Bearer {key}")
    assert response.status_code == 201, response.content
    assert Estimate.objects.get().created_by == manager and CountingHasher.checks == 0
    token.refresh_from_db()
    assert token.last_used_at is not None

    assert post(client, {"drawing_id": ready.pk}, HTTP_AUTHORIZATION=f"Bearer {key}x").status_code == 401
    token.delete()  # revoked
    response = post(client, {"drawing_id": ready.pk}, HTTP_AUTHORIZATION=f"Bearer {key}")
    assert response.status_code == 401 and response.json()["error"]


@pytest.mark.parametrize("value", [True, 1.9, "1e400", None, -1, 10**30, "²", [1], "9" * 5000])
def test_drawing_id_must_be_an_integer(client, manager, ready, value):
    _, key = api_token_create(user=manager, name="t")
    raw = json.dumps({"drawing_id": value}) if value != "1e400" else '{"drawing_id": 1e400}'
    response = client.post(URL, raw, content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {key}")
    assert response.status_code == 400 and "drawing_id" in response.json()["error"]
    assert not Estimate.objects.exists()


def test_every_answer_is_json(client, manager, ready, settings, monkeypatch):
    _, key = api_token_create(user=manager, name="t")
    auth = {"HTTP_AUTHORIZATION": f"Bearer {key}"}

    def is_json(response, status):
        assert response.status_code == status, response.content
        assert response["Content-Type"] == "application/json"
        return response.json()["error"]

    assert "use POST" in is_json(client.get(URL, **auth), 405)
    assert is_json(client.put(URL, "{}", **auth), 405)
    assert is_json(client.post(URL, "{oops", content_type="application/json", **auth), 400)
    assert is_json(client.post(URL, "[" * 5000 + "]" * 5000, content_type="application/json", **auth), 400)
    assert is_json(client.get("/api/nothing-here", **auth), 404)
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    assert "too large" in is_json(post(client, {"drawing_id": ready.pk, "pad": "x" * 5000}, **auth), 413)
    upload = SimpleUploadedFile("a.pdf", b"%PDF-1.4", "application/pdf")
    assert "too large" in is_json(client.post(URL, {"file": upload, "pad": "x" * 5000}, **auth), 413)
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 10 * 1024 * 1024
    settings.UPLOAD_MAX_BYTES = 100
    upload = SimpleUploadedFile("big.pdf", b"%PDF-1.4" + b" " * 500, "application/pdf")
    assert "at most 100" in is_json(client.post(URL, {"file": upload}, **auth), 413)

    def broken(**kwargs):
        raise RuntimeError("a bug")

    monkeypatch.setattr("finetune.api.estimate_create", broken)
    client.raise_request_exception = False
    assert "not made" in is_json(post(client, {"drawing_id": ready.pk}, **auth), 500)


def test_a_failed_estimate_answers_502_and_stores_nothing(client, manager, ready, answers):
    _, key = api_token_create(user=manager, name="t")
    answers["error"] = api_error(400, "The model is unavailable.")
    response = post(client, {"drawing_id": ready.pk}, HTTP_AUTHORIZATION=f"Bearer {key}")
    assert response.status_code == 502
    assert response.json()["error_kind"] == "api_error" and "unavailable" in response.json()["error"]
    assert not Estimate.objects.exists()


def test_correction_and_model_answers_refuse_nan(client, manager, ready, answers):
    from curation.models import Example
    from curation.services.tasks import TargetRefused
    from finetune.services.estimates import estimate_correct

    _, key = api_token_create(user=manager, name="t")
    nan_answer = json.dumps(technology_target("API-9")).replace("12.5", "NaN", 1)
    assert "NaN" in nan_answer
    answers["error"] = nan_answer  # the stand-in answers this text
    response = post(client, {"drawing_id": ready.pk}, HTTP_AUTHORIZATION=f"Bearer {key}")
    assert response.status_code == 201
    data = response.json()
    assert data["error_kind"] == "invalid_json" and "NaN" in data["error"] and data["output"] is None

    estimate = Estimate.objects.get()
    with pytest.raises(TargetRefused, match="NaN"):
        estimate_correct(estimate=estimate, user=make_user("Reviewer"), target_text=nan_answer)
    deep = "[" * 1000 + "]" * 1000
    with pytest.raises(TargetRefused, match="nested"):
        estimate_correct(estimate=estimate, user=make_user("Reviewer"), target_text=deep)
    assert not Example.objects.filter(source=Example.Source.CORRECTION).exists()
