"""Pages with buttons: no form sits inside another (the browser would post the outer one), each button posts
to its own view, and the live JSON endpoints answer, refuse, and say when the work is over."""

from html.parser import HTMLParser

import pytest
from django.urls import reverse
from django.utils import timezone

from curation.models import DatasetVersion
from finetune.models import Estimate, EvalRun, TrainingRun
from finetune.services.promotion import model_version_promote
from finetune.services.run_launch import training_run_create
from tests.factories import make_base_model, make_dataset_version, make_drawing, make_user
from tests.finetune.evalkit import make_done_eval_run, make_plan_dataset_version

pytestmark = pytest.mark.django_db


class _Forms(HTMLParser):
    """Each submit button with the action of the form the browser would post, and every nested form."""

    def __init__(self):
        super().__init__()
        self.open, self.by_id, self.nested, self.buttons = [], {}, [], []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "form":
            if self.open:
                self.nested.append((self.open[-1].get("action"), attrs.get("action")))
            self.open.append(attrs)
            if attrs.get("id"):
                self.by_id[attrs["id"]] = attrs
        elif (tag == "input" and attrs.get("type") == "submit") or (
            tag == "button" and attrs.get("type", "submit") == "submit"
        ):
            owner = attrs.get("form")
            self.buttons.append(
                (attrs.get("value") or attrs.get("name") or "", owner, self.open[-1] if self.open else None)
            )

    def handle_endtag(self, tag):
        if tag == "form" and self.open:
            self.open.pop()

    def actions(self):
        """{button label: action the browser posts to} (None: the page itself)."""
        found = {}
        for label, owner, enclosing in self.buttons:
            form = self.by_id.get(owner) if owner else enclosing
            found[label] = None if form is None else form.get("action")
        return found


def _forms(client, url):
    response = client.get(url)
    assert response.status_code == 200, (url, response.status_code)
    parser = _Forms()
    parser.feed(response.content.decode())
    assert parser.nested == [], f"nested forms on {url}: {parser.nested}"
    return parser.actions()


@pytest.fixture
def manager(roles):
    return make_user("Manager")


def _run(status, **fields):
    run = training_run_create(
        dataset_version=make_dataset_version(), base_model=make_base_model(), user=None, provider="dryrun"
    )
    TrainingRun.objects.filter(pk=run.pk).update(status=status, **fields)
    return run


def test_run_page_buttons_post_to_their_own_views_not_the_change_form(client, manager):
    client.force_login(manager)
    running = _run("running", job_id="ftjob-1")
    actions = _forms(client, reverse("admin:finetune_trainingrun_change", args=[running.pk]))
    assert actions["Sync now"] == reverse("admin:finetune_trainingrun_sync", args=[running.pk])
    finished = _run("failed")
    actions = _forms(client, reverse("admin:finetune_trainingrun_change", args=[finished.pk]))
    assert actions["Relaunch (reuse files)"] == reverse("admin:finetune_trainingrun_relaunch", args=[finished.pk])
    draft = _run("draft")
    _forms(client, reverse("admin:finetune_trainingrun_launch", args=[draft.pk]))
    _forms(client, reverse("admin:finetune_trainingrun_cancel", args=[running.pk]))


def test_eval_run_and_dataset_version_buttons_post_to_their_own_views(client, manager):
    client.force_login(manager)
    version = make_plan_dataset_version(n_validation=2, n_train=0)
    done = make_done_eval_run(version)
    failed = make_done_eval_run(version)
    EvalRun.objects.filter(pk=failed.pk).update(status="failed", error="worker killed")
    assert "Resume (ask only unanswered examples)" not in _forms(
        client, reverse("admin:finetune_evalrun_change", args=[done.pk])
    )
    actions = _forms(client, reverse("admin:finetune_evalrun_change", args=[failed.pk]))
    assert actions["Resume (ask only unanswered examples)"] == reverse(
        "admin:finetune_evalrun_resume", args=[failed.pk]
    )
    actions = _forms(client, reverse("admin:curation_datasetversion_change", args=[version.pk]))
    export = next(label for label in actions if label.startswith("Export"))
    assert actions[export] == reverse("admin:curation_datasetversion_export", args=[version.pk])


def test_model_version_and_estimate_pages_have_no_nested_forms(client, manager):
    client.force_login(manager)
    version = make_plan_dataset_version(n_validation=2, n_train=0)
    model_version = model_version_promote(
        eval_run=make_done_eval_run(version), user=manager, override_reason="first model"
    )
    _forms(client, reverse("admin:finetune_modelversion_change", args=[model_version.pk]))
    estimate = Estimate.objects.create(
        task=version.dataset.task,
        drawing=make_drawing(),
        model_name="gpt-4o",
        provider="openai",
        output={"operations": []},
    )
    _forms(client, reverse("admin:finetune_estimate_change", args=[estimate.pk]))
    _forms(client, reverse("admin:finetune_estimate_correct", args=[estimate.pk]))
    _forms(client, reverse("admin:finetune_evalrun_promote", args=[model_version.eval_run_id]))


def test_live_endpoints_answer_json_while_work_runs_and_refuse_without_permission(client, manager, roles):
    client.force_login(manager)
    run = _run("running", job_id="ftjob-2", last_synced_at=timezone.now())
    url = reverse("admin:finetune_trainingrun_live", args=[run.pk])
    state = client.get(url).json()
    assert state["status"] == "running" and state["active"] is True and state["fields"]["status"] == "Running"
    assert state["fields"]["progress"] == "no metrics yet"
    page = client.get(reverse("admin:finetune_trainingrun_change", args=[run.pk])).content.decode()
    assert f'data-live-url="{url}"' in page and "gestima/live.js" in page
    TrainingRun.objects.filter(pk=run.pk).update(status="succeeded")
    assert client.get(url).json()["active"] is False
    page = client.get(reverse("admin:finetune_trainingrun_change", args=[run.pk])).content.decode()
    assert "data-live-url" not in page and "gestima/live.js" not in page  # a finished run's page never polls

    version = make_dataset_version()
    DatasetVersion.objects.filter(pk=version.pk).update(export_status="running", export_progress=6)
    version_url = reverse("admin:curation_datasetversion_live", args=[version.pk])
    assert client.get(version_url).json()["fields"]["export"] == "Running: 6 / 12 lines (50%)"

    client.force_login(make_user("Reviewer"))
    for refused in (url, version_url):
        response = client.get(refused)
        assert response.status_code == 403 and "error" in response.json()
    assert client.get(reverse("admin:finetune_trainingrun_live", args=[99999])).status_code == 403
    client.force_login(manager)
    missing = client.get(reverse("admin:finetune_trainingrun_live", args=[99999]))
    assert missing.status_code == 404 and "does not exist" in missing.json()["error"]
