"""The shutdown warning in a real browser: a Manager reads it on the admin index, follows "Set the fallback",
saves a fallback, and the box names it; a Reviewer reads the same box without the link."""

import datetime


from finetune.models import TaskFallback
from finetune.services.promotion import model_version_promote
from tests.e2e.browser import BROWSER_MARKS, log_out
from tests.factories import make_base_model, make_user
from tests.finetune.evalkit import FT_MODEL, make_done_eval_run, make_plan_dataset_version

pytestmark = BROWSER_MARKS
FALLBACK = "gpt-4.1-nano-2025-04-14"


def _login(page, url, username, password):
    page.goto(f"{url}/admin/login/?next=/admin/")
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    page.click("input[type=submit]")
    page.wait_for_selector("#content")


def test_manager_sets_the_fallback_from_the_warning_and_a_reviewer_reads_it(
    live_server, transactional_db, browser_page, settings
):  # noqa: F811
    page = browser_page
    settings.GESTIMA_TODAY = "2026-12-20"
    make_base_model("gpt-4o-2024-08-06", price="25", shutdown_date=datetime.date(2027, 1, 14))
    make_base_model(FALLBACK, price="1.5")
    manager = make_user("Manager", username="mara", password="Manager-pw-2026")
    make_user("Reviewer", username="rita", password="Review-pw-2026")
    version = make_plan_dataset_version(n_validation=3, n_train=0)
    task = version.dataset.task
    model_version_promote(
        eval_run=make_done_eval_run(version, model_name=FT_MODEL, kind="fine_tuned"),
        user=manager,
        override_reason="browser test on a small evaluation set",
    )
    make_done_eval_run(version, model_name=FALLBACK, factor=1.2)

    _login(page, live_server.url, "mara", "Manager-pw-2026")
    box = " ".join(page.inner_text("#lifecycle-warnings").split())
    assert f"{task.slug}: the active model {FT_MODEL} stops serving on 2027-01-14 (in 25 days)" in box
    assert "No fallback model is set" in box and FALLBACK in box and "20.0 %" in box

    page.click("#lifecycle-warnings >> text=Set the fallback")
    page.wait_for_selector("#id_model_name")
    assert page.input_value("#id_task") == str(task.pk)  # the task comes from the warning
    page.fill("#id_model_name", FALLBACK)
    page.select_option("#id_provider", "openai")
    page.click("input[name=_save]")
    page.wait_for_selector(".messagelist")
    fallback = TaskFallback.objects.get(task=task)
    assert fallback.model_name == FALLBACK and fallback.updated_by == manager

    page.goto(f"{live_server.url}/admin/")
    box = " ".join(page.inner_text("#lifecycle-warnings").split())
    assert f"Fallback: {FALLBACK} (openai)" in box and "No fallback model is set" not in box

    log_out(page)
    _login(page, live_server.url, "rita", "Review-pw-2026")
    box = " ".join(page.inner_text("#lifecycle-warnings").split())
    assert "stops serving on 2027-01-14" in box and "Set the fallback" not in box
