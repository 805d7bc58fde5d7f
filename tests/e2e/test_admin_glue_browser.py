"""The drawing list's "Estimate" action (gestima/admin_glue.py) in a real browser: a Reviewer is not offered it,
a Manager picks it, clicks Go and reads that the estimate was made."""

import json

import pytest

from finetune.models import Estimate
from finetune.services.promotion import model_version_promote
from tests.e2e.browser import BROWSER_MARKS, log_out, login
from tests.factories import make_drawing, make_user, technology_target
from tests.finetune.evalkit import MODEL, make_done_eval_run, make_plan_dataset_version, use_standin
from tests.openai_standin import StandIn
from tests.openai_standin.chat import install_chat, part_number

pytestmark = BROWSER_MARKS
ACTION = "Estimate with the task's active model"


@pytest.fixture
def standin(settings):
    with StandIn() as api:
        install_chat(api, lambda body: json.dumps(technology_target(part_number(body), minutes=12.0)))
        use_standin(settings, api)
        yield api


def test_a_reviewer_is_not_offered_the_estimate_action_and_a_managers_estimate_is_made(
    live_server, transactional_db, browser_page, standin, roles
):
    page = browser_page
    manager = make_user("Manager", username="mara", password="Manager-pw-2026")
    make_user("Reviewer", username="rita", password="Reviewer-pw-2026")
    version = make_plan_dataset_version(n_validation=3, n_train=0)
    model_version_promote(
        eval_run=make_done_eval_run(version, model_name=MODEL),
        user=manager,
        override_reason="browser test on a small evaluation set",
    )
    drawing = make_drawing(part_number="GLUE-1")

    login(page, live_server, "rita", "Reviewer-pw-2026", next_url="/admin/curation/drawing/")
    page.wait_for_selector("#result_list")
    assert ACTION not in page.content()
    log_out(page)

    login(page, live_server, "mara", "Manager-pw-2026", next_url="/admin/curation/drawing/")
    page.check(f"#result_list input[name=_selected_action][value='{drawing.pk}']")
    page.select_option("select[name=action]", label=ACTION)
    page.click("button[name=index]")
    page.wait_for_selector(".messagelist")
    assert "1 estimate(s) made; see Estimates." in page.inner_text(".messagelist")
    estimate = Estimate.objects.get(drawing=drawing)
    assert estimate.model_name == MODEL and estimate.output["operations"][0]["machine_time_min_per_piece"] == 12.0
