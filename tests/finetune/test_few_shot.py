"""Few-shot from reviewed examples: which shots are chosen (never the evaluated split, the drawing, its part or
a near-duplicate; k; deterministic), what the model receives (through the real SDK to the stand-in), the cost
shown before a run, promotion and estimates with the same shots, and the one table beside other models."""

import json
import re

import pytest

from curation.models import DatasetMember, DrawingPage, Example
from finetune.models import EvalRun, ModelKind
from finetune.services.estimates import estimate_create
from finetune.services.evals import EvalError, eval_run_create
from finetune.services.few_shot import eval_run_shots
from finetune.services.promotion import model_version_promote
from tests.factories import make_drawing, make_example, make_user, technology_target
from tests.finetune.evalkit import (
    FT_MODEL,
    MODEL,
    make_done_eval_run,
    make_plan_dataset_version,
    make_priced_base_model,
    use_standin,
)
from tests.openai_standin import StandIn
from tests.openai_standin.chat import install_chat, part_number

pytestmark = pytest.mark.django_db
FAR = [
    0x9E3779B97F4A7C15,
    0xC2B2AE3D27D4EB4F,
    0x165667B19E3779F9,
    0xD6E8FEB86659FD93,
    0xFF51AFD7ED558CCD,
    0xC4CEB9FE1A85EC53,
    0x2545F4914F6CDD1D,
    0x94D049BB133111EB,
    0xBF58476D1CE4E5B9,
    0x5851F42D4C957F2D,
]


@pytest.fixture
def manager(roles):
    return make_user("Manager")


def _hash(example: Example, value: int) -> None:
    DrawingPage.objects.filter(drawing_id=example.drawing_id).update(phash=f"{value:016x}")


def _members(version, split):
    return list(version.members.filter(split=split).select_related("example").order_by("position"))


def _far_apart(version):
    """Every page gets a hash far from every other one, so only what a test sets is near."""
    for i, member in enumerate(version.members.select_related("example").order_by("position")):
        _hash(member.example, FAR[i])


def _queued_run(manager, version, *, k=3, split="validation", model=MODEL):
    # Inside the test's transaction nothing is enqueued: the run is recorded, not executed.
    return eval_run_create(
        task=version.dataset.task,
        model_name=model,
        model_kind=ModelKind.FEW_SHOT,
        provider="openai",
        dataset_version=version,
        split=split,
        user=manager,
        few_shot_k=k,
    )


def test_shots_never_come_from_the_evaluated_split_the_drawing_its_part_or_a_near_duplicate(manager):
    version = make_plan_dataset_version(n_validation=2, n_train=5)
    _far_apart(version)
    (v0, v1), train = _members(version, "validation"), _members(version, "train")
    h0 = FAR[0]
    _hash(v0.example, h0)
    same_part, near_page, linked, second, first = (m.example for m in train)
    Example.objects.filter(pk=same_part.pk).update(group_key=v0.example.group_key)
    _hash(same_part, h0 ^ 0xFF)  # closest of all, but another drawing of the same part
    _hash(near_page, h0 ^ 0x1)  # 1 bit: a near-duplicate page
    Example.objects.filter(pk=linked.pk).update(near_duplicate_of=v0.example)  # flagged near-duplicate
    _hash(first, h0 ^ 0xFFFF)  # 16 bits
    _hash(second, h0 ^ 0xFFFFFF)  # 24 bits
    # The evaluated drawing itself, as another (approved) train example.
    itself = make_example(
        task=version.dataset.task,
        drawing=v0.example.drawing,
        group_key="OTHER-PART",
        content_hash="f" * 64,
        status=Example.Status.APPROVED,
    )
    DatasetMember.objects.create(
        version=version, example=itself, split="train", position=99, messages=itself.messages, target=itself.target
    )

    run = _queued_run(manager, version, k=3)
    shots = eval_run_shots(eval_run=run)

    assert [s["example_id"] for s in shots[v0.example_id]] == [
        first.pk,
        second.pk,
    ]  # the only ones allowed, nearest first
    assert len(shots[v1.example_id]) == 3  # k respected where more are allowed
    validation_ids = {v0.example_id, v1.example_id}
    for chosen in shots.values():
        assert not validation_ids & {s["example_id"] for s in chosen}
    assert (
        run.few_shot["k"] == 3
        and run.few_shot["rule"] == "dhash_tags_v1"
        and run.few_shot["dataset_version"] == version.pk
    )
    assert eval_run_shots(eval_run=run) == shots  # deterministic

    with pytest.raises(EvalError, match="takes its examples from the train split"):
        _queued_run(manager, version, split="train")


def test_shared_tags_bring_an_example_closer_and_ties_go_by_example_id(manager):
    version = make_plan_dataset_version(
        n_validation=1, n_train=3, tags=lambda i: {"machine": ["NZX 2000"], "material": "C45"}
    )
    (v0,), train = _members(version, "validation"), _members(version, "train")
    _far_apart(version)
    _hash(v0.example, FAR[0])
    for member in train:
        _hash(member.example, FAR[0] ^ 0xFFFF)  # all 16 bits away
    Example.objects.filter(pk=train[2].example_id).update(tags={"machine": ["DMU 50"]})
    Example.objects.filter(pk=train[1].example_id).update(tags={"machine": ["NZX 2000"], "material": "C45"})
    Example.objects.filter(pk=train[0].example_id).update(tags={"machine": ["NZX 2000"]})
    Example.objects.filter(pk=v0.example_id).update(tags={"machine": ["NZX 2000"], "material": "c45"})

    shots = eval_run_shots(eval_run=_queued_run(manager, version, k=2))
    assert [s["example_id"] for s in shots[v0.example_id]] == [train[1].example_id, train[0].example_id]


def _part_of(message) -> str:
    return part_number({"messages": [message]})


def _question_part(body):
    return _part_of([m for m in body["messages"] if m["role"] == "user"][-1])


@pytest.fixture
def standin(settings):
    """Answers the real question (the last user turn) with its target; every request is kept in `calls`."""
    with StandIn() as api:
        install_chat(api, lambda body: json.dumps(technology_target(_question_part(body), minutes=11.0)))
        use_standin(settings, api)
        yield api


def test_a_few_shot_eval_run_sends_the_shots_before_the_question(
    manager, standin, run_worker, django_capture_on_commit_callbacks
):
    make_priced_base_model()
    version = make_plan_dataset_version(n_validation=3, n_train=4)
    _far_apart(version)
    train_targets = {m.example.group_key: m.target for m in _members(version, "train")}
    with django_capture_on_commit_callbacks(execute=True):
        run = eval_run_create(
            task=version.dataset.task,
            model_name=MODEL,
            model_kind=ModelKind.FEW_SHOT,
            provider="openai",
            dataset_version=version,
            user=manager,
            few_shot_k=2,
        )
    run_worker("openai")
    run.refresh_from_db()
    assert run.status == EvalRun.Status.DONE, run.error
    errors = list(run.results.exclude(error_message="").values_list("error_kind", "error_message"))
    assert run.done_count == 3 and run.cost_usd is not None, errors

    bodies = [c.json() for c in standin.calls_to("POST", "/chat/completions")]
    assert len(bodies) == 3
    for body in bodies:
        messages = body["messages"]
        assert [m["role"] for m in messages] == ["system", "user", "assistant", "user", "assistant", "user"]
        assert messages[0]["content"] == version.dataset.task.system_prompt
        question = _question_part(body)
        assert question.startswith("V-")
        for user, assistant in ((messages[1], messages[2]), (messages[3], messages[4])):
            shot_part = _part_of(user)
            assert shot_part.startswith("T-") and shot_part != question
            assert assistant["content"] == train_targets[shot_part]  # the approved answer, as reviewed
            assert user["content"][1]["image_url"]["url"].startswith("data:image/png;base64,")


def test_a_promoted_few_shot_model_answers_estimates_with_shots_of_its_dataset_version(
    manager, standin, run_worker, django_capture_on_commit_callbacks
):
    version = make_plan_dataset_version(n_validation=2, n_train=3)
    _far_apart(version)
    train_parts = {m.example.group_key for m in _members(version, "train")}
    with django_capture_on_commit_callbacks(execute=True):
        run = eval_run_create(
            task=version.dataset.task,
            model_name=MODEL,
            model_kind=ModelKind.FEW_SHOT,
            provider="openai",
            dataset_version=version,
            user=manager,
            few_shot_k=2,
        )
    run_worker("openai")
    model_version = model_version_promote(
        eval_run=EvalRun.objects.get(pk=run.pk), user=manager, override_reason="few-shot test on a small evaluation set"
    )
    assert model_version.kind == ModelKind.FEW_SHOT and model_version.few_shot["dataset_version"] == version.pk
    assert (
        f"- Few-shot: 2 reviewed examples before each question, from the train split of dataset version {version.pk}"
        in model_version.model_card
    ) and f"- Base model: {MODEL}\n" in model_version.model_card

    estimate = estimate_create(drawing=make_drawing(part_number="NEW-900"), task=version.dataset.task, user=manager)
    assert estimate.error == "" and estimate.output["part_number"] == "NEW-900"
    body = standin.calls_to("POST", "/chat/completions")[-1].json()
    shot_parts = [_part_of(m) for m in body["messages"][1:-1] if m["role"] == "user"]
    assert len(shot_parts) == 2 and set(shot_parts) <= train_parts
    assert [m["role"] for m in body["messages"]] == ["system", "user", "assistant", "user", "assistant", "user"]


def test_the_evaluate_form_shows_the_input_cost_before_queueing(client, manager):
    version = make_plan_dataset_version(n_validation=2, n_train=3)
    form = {
        "task": version.dataset.task.pk,
        "dataset_version": version.pk,
        "split": "validation",
        "model_name": "some-open-model",
        "model_kind": "few_shot",
        "provider": "openai",
        "few_shot_k": "2",
    }
    client.force_login(manager)
    page = client.post("/admin/finetune/evalrun/evaluate/", form).content.decode()
    assert "Estimated input tokens" in page and "k = 2 per question" in page
    assert re.search(r'class="few-shot-cost">unknown<', page)  # no price for this model: never $0
    assert not EvalRun.objects.exists()

    make_priced_base_model()
    page = client.post("/admin/finetune/evalrun/evaluate/", {**form, "model_name": MODEL}).content.decode()
    tokens = int(re.search(r'class="few-shot-tokens">(\d+)<', page).group(1))
    assert tokens > 0 and re.search(r'class="few-shot-cost">\$0\.0\d+<', page)

    response = client.post("/admin/finetune/evalrun/evaluate/", {**form, "model_name": MODEL, "confirm": "1"})
    run = EvalRun.objects.get()
    assert response.status_code == 302 and run.model_kind == "few_shot" and run.few_shot["k"] == 2
    run_page = client.get(f"/admin/finetune/evalrun/{run.pk}/change/").content.decode()
    assert "k (worked examples per question)" in run_page and f'class="few-shot-tokens">{tokens}<' in run_page


def test_base_fine_tuned_and_few_shot_models_side_by_side_with_intervals(client, manager):
    version = make_plan_dataset_version(n_validation=6, n_train=3)
    make_done_eval_run(version, kind="base", factor=1.3)
    make_done_eval_run(version, model_name=FT_MODEL, kind="fine_tuned", factor=1.05)
    few = make_done_eval_run(version, kind="few_shot", factor=1.1)
    other = make_plan_dataset_version(n_validation=2, n_train=1)
    make_done_eval_run(other, model_name="elsewhere-model", kind="base")
    client.force_login(manager)
    page = client.get(
        f"/admin/finetune/evalrun/?dataset_version__id__exact={version.pk}&split__exact=validation"
    ).content.decode()
    for label in ("Base model", "Fine-tuned model", "Few-shot from reviewed examples"):
        assert label in page
    assert page.count("95 % CI") == 3 and "elsewhere-model" not in page
    assert model_version_promote(eval_run=few, user=manager, override_reason="small set").kind == "few_shot"


def test_the_evaluate_command_records_k_and_the_rule(manager, capsys):
    from django.core.management import call_command

    version = make_plan_dataset_version(n_validation=2, n_train=2)
    call_command("evaluate", MODEL, str(version.pk), "--kind", "few_shot", "--k", "2")
    out = capsys.readouterr().out
    assert "(few_shot)" in out and "few-shot: k=2 (dhash_tags_v1:" in out
    assert EvalRun.objects.get().few_shot["k"] == 2


def test_one_shot_shown_to_many_questions_at_once_is_read_by_each(
    manager, standin, run_worker, django_capture_on_commit_callbacks
):
    # Every question shares the single train example: eight threads read its page image at the same time.
    version = make_plan_dataset_version(n_validation=8, n_train=1)
    _far_apart(version)
    with django_capture_on_commit_callbacks(execute=True):
        run = eval_run_create(
            task=version.dataset.task,
            model_name=MODEL,
            model_kind=ModelKind.FEW_SHOT,
            provider="openai",
            dataset_version=version,
            user=manager,
            few_shot_k=1,
            concurrency=8,
        )
    run_worker("openai")
    run.refresh_from_db()
    errors = list(run.results.exclude(error_message="").values_list("error_message", flat=True))
    assert run.done_count == 8 and not errors, errors
    assert len(standin.calls_to("POST", "/chat/completions")) == 8
