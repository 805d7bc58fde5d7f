"""Every admin screen a newcomer clicks after `./dev run` renders: list, add and change pages, for each role."""

import pytest
from django.contrib import admin
from django.core.management import call_command
from django.urls import reverse

from tests.factories import make_user


@pytest.fixture
def demo(db, capsys):
    call_command("demo_data")
    capsys.readouterr()  # the demo prints its logins


@pytest.fixture
def one_of_each(demo):
    """The demo plus one row of every model the demo leaves empty, so each change page is opened too."""
    from curation.models import BaseModel, Drawing
    from finetune.models import Estimate, ModelVersion, TrainingRun
    from tests.finetune.evalkit import make_done_eval_run, make_plan_dataset_version

    version = make_plan_dataset_version(n_validation=2, n_train=1)
    from curation.models import DatasetBuild

    DatasetBuild.objects.create(dataset=version.dataset, status="done", version=version, done=6, total=6)
    eval_run = make_done_eval_run(version)
    TrainingRun.objects.create(dataset_version=version, base_model=BaseModel.objects.order_by("pk").first())
    ModelVersion.objects.create(
        task=version.dataset.task, model_name=eval_run.model_name, kind="base", eval_run=eval_run
    )
    from finetune.models import ModelEndpoint

    ModelEndpoint.objects.create(
        name="vllm", base_url="http://gpu-box:8000/v1", model_name="m", api_key_env="VLLM_API_KEY"
    )
    Estimate.objects.create(
        task=version.dataset.task,
        drawing=Drawing.objects.order_by("pk").first(),
        model_name=eval_run.model_name,
        provider="openai",
        output={"part_number": "X"},
    )
    from axes.models import AccessAttempt, AccessFailureLog, AccessLog
    from django.contrib.auth.models import User
    from django.utils import timezone

    from finetune.models import TaskFallback
    from finetune.services.api_tokens import api_token_create

    api_token_create(user=User.objects.order_by("pk").first(), name="probe")
    TaskFallback.objects.create(task=version.dataset.task, model_name="gpt-4.1-mini-2025-04-14")
    now = timezone.now()
    AccessAttempt.objects.create(
        username="x", ip_address="127.0.0.1", user_agent="t", attempt_time=now, failures_since_start=1
    )
    AccessLog.objects.create(username="x", ip_address="127.0.0.1", user_agent="t", attempt_time=now)
    AccessFailureLog.objects.create(username="x", ip_address="127.0.0.1", user_agent="t", attempt_time=now)


def _pages():
    for model, model_admin in admin.site._registry.items():
        opts = model._meta
        if not opts.managed:
            continue
        yield model, model_admin, f"admin:{opts.app_label}_{opts.model_name}"


# HTTP status of each admin page after redirects, for superuser / Manager / Reviewer:
#   changelist | add page | change page of the first row.
# A page added to the admin fails the test below until its row is here, with the statuses each role should get.
EXPECTED = """
auth_group                 200 403 403 | 200 403 403 | 200 403 403
axes_accessattempt         200 403 403 | 403 403 403 | 200 403 403
axes_accessfailurelog      200 403 403 | 403 403 403 | 200 403 403
axes_accesslog             200 403 403 | 403 403 403 | 200 403 403
auth_user                  200 403 403 | 200 403 403 | 200 403 403
curation_basemodel         200 200 403 | 200 403 403 | 200 200 403
curation_dataset           200 200 403 | 200 200 403 | 200 200 403
curation_datasetbuild      200 200 403 | 403 403 403 | 200 200 403
curation_datasetversion    200 200 403 | 403 403 403 | 200 200 403
curation_drawing           200 200 200 | 403 403 403 | 200 200 200
curation_example           200 200 200 | 403 403 403 | 200 200 200
curation_groundtruth       200 200 200 | 403 403 403 | 200 200 200
curation_machine           200 200 403 | 200 200 403 | 200 200 403
curation_materialalias     200 200 403 | 200 200 403 | 200 200 403
curation_productionrecord  200 200 200 | 200 200 403 | 200 200 200
curation_task              200 200 200 | 200 200 403 | 200 200 200
finetune_estimate          200 200 200 | 200 200 403 | 200 200 200
finetune_evalresult        200 200 200 | 403 403 403 | 200 200 200
finetune_evalrun           200 200 200 | 200 200 403 | 200 200 200
finetune_modelendpoint     200 200 403 | 200 200 403 | 200 200 403
finetune_modelversion      200 200 200 | 403 403 403 | 200 200 200
finetune_trainingrun       200 200 403 | 200 200 403 | 200 200 403
finetune_apitoken          200 403 403 | 200 403 403 | 200 403 403
finetune_taskfallback      200 200 200 | 200 200 403 | 200 200 200
"""
ROLES = ("superuser", "Manager", "Reviewer")
# Add pages that are forms of their own: "Add" leads there (and the form itself answers 403 to a Reviewer).
ADD_LEADS_TO = {
    "finetune_evalrun": "admin:finetune_evalrun_evaluate",
    "finetune_estimate": "admin:finetune_estimate_create",
}


def _expected(role: str) -> dict[str, tuple[int, int, int]]:
    column = ROLES.index(role)
    table = {}
    for line in EXPECTED.strip().splitlines():
        name, rest = line.split(maxsplit=1)
        table[name] = tuple(int(block.split()[column]) for block in rest.split("|"))
    return table


@pytest.mark.parametrize("role", ROLES)
def test_every_admin_screen_gives_each_role_exactly_its_status(client, one_of_each, role):
    user = make_user(superuser=True) if role == "superuser" else make_user(role)
    client.force_login(user)
    assert client.get("/").status_code == 302
    assert client.get(reverse("admin:index")).status_code == 200
    expected = _expected(role)
    pages = list(_pages())
    assert {prefix.removeprefix("admin:") for _, _, prefix in pages} == set(expected), "EXPECTED lists every admin page"
    got = {}
    for model, _, prefix in pages:
        name = prefix.removeprefix("admin:")
        first = model.objects.order_by("pk").first()
        assert first is not None, f"{name}: the fixture makes no row, so its change page is never opened"
        changelist = client.get(reverse(f"{prefix}_changelist"))
        add = client.get(reverse(f"{prefix}_add"), follow=True)
        change = client.get(reverse(f"{prefix}_change", args=[first.pk]), follow=True)
        got[name] = (changelist.status_code, add.status_code, change.status_code)
        if name in ADD_LEADS_TO:
            assert add.redirect_chain[-1][0] == reverse(ADD_LEADS_TO[name]), (name, add.redirect_chain)
        else:
            assert not add.redirect_chain and not change.redirect_chain, (
                name,
                add.redirect_chain,
                change.redirect_chain,
            )
    assert got == expected, got
