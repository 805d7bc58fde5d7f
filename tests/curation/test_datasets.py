"""Dataset builds: group-safe deterministic split, content hash, frozen versions, gates, format problems, tokens,
cost."""

import io
import json
from decimal import Decimal

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from PIL import Image

from curation.models import BaseModel, Dataset, DatasetMember, DatasetVersion, Example
from curation.services.base_models import base_models_seed
from curation.services.dataset_split import assign_splits
from curation.services.datasets import DatasetBuildError, dataset_build, dataset_version_validate
from tests.factories import make_drawing, make_example, make_task, technology_target

pytestmark = pytest.mark.django_db
APPROVED = Example.Status.APPROVED


def approved_examples(n, *, task=None, tags=None, **kw):
    task = task or make_task()
    return [
        make_example(task=task, status=APPROVED, tags=tags, target=technology_target(f"P-{i}", minutes=5 + i), **kw)
        for i in range(n)
    ]


def make_dataset(task=None, **fields):
    task = task or make_task()
    return Dataset.objects.create(name=fields.pop("name", "tech"), task=task, **fields)


def test_split_is_deterministic_and_group_safe_with_near_duplicates():
    task = make_task()
    examples = []
    for part in range(12):
        drawing = make_drawing(part_number=f"G-{part}")
        for _ in range(2):  # two examples per part: must share a split
            examples.append(
                make_example(
                    task=task,
                    drawing=drawing,
                    status=APPROVED,
                    target=technology_target(f"G-{part}", minutes=len(examples) + 1),
                )
            )
    # Near-duplicate drawings (another part number) must follow their original's split.
    originals = examples[::2][:6]
    dups = [
        make_example(
            task=task,
            status=APPROVED,
            near_duplicate_of=o,
            is_near_duplicate=True,
            target=technology_target(f"D-{i}", minutes=100 + i),
        )
        for i, o in enumerate(originals)
    ]
    dataset = make_dataset(task, validation_fraction=0.3, split_seed=7)
    version = dataset_build(dataset=dataset)

    split = dict(version.members.values_list("example_id", "split"))
    by_group = {}
    for example in examples:
        by_group.setdefault(example.group_key, set()).add(split[example.pk])
    assert all(len(s) == 1 for s in by_group.values()), by_group
    for original, dup in zip(originals, dups):
        assert split[dup.pk] == split[original.pk]
    assert version.counts["train"] > 0 and version.counts["validation"] > 0
    assert version.counts["train"] + version.counts["validation"] == len(examples) + len(dups)

    # Another seed gives another split; the same seed on another dataset gives the same one.
    same = dataset_build(dataset=make_dataset(task, name="tech-2", validation_fraction=0.3, split_seed=7))
    assert dict(same.members.values_list("example_id", "split")) == split
    other = dataset_build(dataset=make_dataset(task, name="tech-3", validation_fraction=0.3, split_seed=8))
    assert dict(other.members.values_list("example_id", "split")) != split


def test_train_never_empty_and_validation_gets_a_group():
    groups = {1: "a", 2: "b", 3: "c"}
    everything = assign_splits(groups=groups, fraction=1.0, seed=1)
    assert "train" in everything.values() and "validation" in everything.values()
    nothing = assign_splits(groups=groups, fraction=0.0001, seed=1)
    assert list(nothing.values()).count("validation") == 1
    assert set(assign_splits(groups=groups, fraction=0, seed=1).values()) == {"train"}


def test_hash_is_stable_and_rebuild_without_change_returns_the_same_version():
    approved_examples(12)
    dataset = make_dataset()
    first = dataset_build(dataset=dataset)
    again = dataset_build(dataset=dataset)
    assert again.pk == first.pk and again.number == 1
    assert DatasetVersion.objects.count() == 1


def test_target_change_makes_a_new_version_and_leaves_the_old_one_as_it_was():
    examples = approved_examples(12)
    dataset = make_dataset()
    v1 = dataset_build(dataset=dataset)
    member = v1.members.get(example=examples[0])
    old_target = member.target

    examples[0].target = json.dumps(technology_target("P-0", minutes=99.5))
    examples[0].save()
    v2 = dataset_build(dataset=dataset)

    assert v2.number == 2 and v2.content_hash != v1.content_hash
    assert v2.members.get(example=examples[0]).target == examples[0].target
    v1.refresh_from_db()
    assert v1.members.get(example=examples[0]).target == old_target
    assert v1.members.count() == 12


def test_ten_rows_with_a_validation_split_leave_too_few_training_rows():
    approved_examples(10)
    version = dataset_build(dataset=make_dataset(validation_fraction=0.1))
    gate = next(g for g in version.gates if g["name"] == "min_train_rows")
    assert not gate["passed"] and gate["message"].startswith("9 training rows: below OpenAI's minimum of 10")


def test_seven_examples_fail_the_min_rows_gate_with_a_clear_message():
    approved_examples(7)
    version = dataset_build(dataset=make_dataset(min_rows=5))  # a policy below 10 is raised to OpenAI's 10
    gate = next(g for g in version.gates if g["name"] == "min_rows")
    assert gate["passed"] is False and gate["value"] == 7 and gate["threshold"] == 10
    assert gate["message"] == "7 rows: below the minimum of 10"
    assert version.gates_passed is False


def test_tag_share_duplicate_target_and_prefix_gates():
    task = make_task("support_reply")
    for i in range(12):
        make_example(
            task=task,
            status=APPROVED,
            tags={"industry": "medical" if i < 11 else "auto"},
            target="Thanks for your message, we will check it." if i < 6 else f"Answer number {i}: fine.",
        )
    version = dataset_build(
        dataset=make_dataset(
            task,
            max_tag_share={"industry": 0.8},
            max_duplicate_target_share=0.2,
            max_same_prefix_share=0.4,
            prefix_chars=10,
        )
    )
    gates = {g["name"]: g for g in version.gates}
    assert not gates["max_tag_share:industry"]["passed"]
    assert gates["max_tag_share:industry"]["message"] == "industry=medical is 92% of rows: above the maximum of 80%"
    assert not gates["max_duplicate_target_share"]["passed"] and gates["max_duplicate_target_share"]["value"] == round(
        5 / 12, 4
    )
    assert "5 rows repeat another row's target" in gates["max_duplicate_target_share"]["message"]
    assert not gates["max_same_prefix_share"]["passed"]  # 6 "Thanks for" + 6 "Answer num": 50% > 40%
    assert gates["min_rows"]["passed"] and gates["format"]["passed"]


def test_no_matching_example_is_a_clear_error():
    with pytest.raises(DatasetBuildError, match="approve examples first"):
        dataset_build(dataset=make_dataset())


def _replace_page_file(example, data: bytes):
    page = example.drawing.pages.first()
    with open(page.image.path, "wb") as handle:
        handle.write(data)
    return page


def _jpeg(mode: str) -> bytes:
    buffer = io.BytesIO()
    Image.new(mode, (64, 64)).save(buffer, "JPEG")
    return buffer.getvalue()


@pytest.mark.parametrize(
    "bad_bytes, expected",
    [
        (b"this is not an image at all" * 10, "cannot be decoded"),
        (_jpeg("CMYK"), "mode CMYK"),
    ],
)
def test_bad_page_image_is_reported_against_its_example(bad_bytes, expected):
    examples = approved_examples(11)
    _replace_page_file(examples[3], bad_bytes)
    version = dataset_build(dataset=make_dataset())
    problems = [p for p in version.problems if p["code"] == "invalid_image"]
    assert len(problems) == 1 and problems[0]["example_id"] == examples[3].pk
    assert expected in problems[0]["message"]
    assert not {g["name"]: g for g in version.gates}["format"]["passed"]


def test_validate_finds_damage_after_the_build():
    examples = approved_examples(10)
    version = dataset_build(dataset=make_dataset(validation_fraction=0))
    assert version.problems == [] and version.gates_passed
    _replace_page_file(examples[0], b"garbage")
    version = dataset_version_validate(version=version)
    assert [p["example_id"] for p in version.problems] == [examples[0].pk]
    assert not version.gates_passed


def test_invalid_target_is_a_problem():
    examples = approved_examples(10)
    Example.objects.filter(pk=examples[2].pk).update(target='{"part_number": "P-2"}')
    version = dataset_build(dataset=make_dataset())
    assert [(p["example_id"], p["code"]) for p in version.problems] == [(examples[2].pk, "target_invalid")]


def test_tokens_per_member_and_cost_per_base_model():
    base_models_seed()
    approved_examples(10)
    version = dataset_build(dataset=make_dataset(epochs=3, validation_fraction=0))
    members = list(version.members.all())
    # Every page is 1200 × 850 at detail=high: 768 × 1084 after scaling → 2 × 3 tiles → 85 + 170·6 = 1105.
    assert all(m.image_tokens == 1105 for m in members)
    assert all(m.text_tokens > 20 for m in members)
    train = sum(m.text_tokens + m.image_tokens for m in members)
    assert version.tokens["train"]["total"] == train
    cost = version.cost_estimates["gpt-4o-2024-08-06"]
    assert Decimal(cost["usd"]) == (Decimal(25) * train * 3 / Decimal(1_000_000)).quantize(Decimal("0.01"))
    assert cost["shutdown_date"] == "2027-01-14" and cost["jobs_end_date"] == "2027-01-06"
    assert "does not take images" in version.cost_estimates["gpt-4o-mini-2024-07-18"]["note"]


def test_base_model_seed_is_idempotent_and_keeps_admin_edits():
    base_models_seed()
    BaseModel.objects.filter(name="gpt-4.1-2025-04-14").update(training_price_per_1m=Decimal("30"))
    base_models_seed()
    assert BaseModel.objects.count() == 6 + 6  # OpenAI's and Together's
    assert BaseModel.objects.filter(provider="together", training_price_per_1m__isnull=True).count() == 6
    assert BaseModel.objects.get(name="gpt-4.1-2025-04-14").training_price_per_1m == Decimal("30")
    assert BaseModel.objects.get(name="gpt-4.1-nano-2025-04-14").training_price_per_1m == Decimal("1.50")


def test_build_and_validate_commands_print_gates_and_cost(capsys):
    base_models_seed()
    approved_examples(7)
    make_dataset(name="seven")
    call_command("build_dataset", "seven", "--sync")
    out = capsys.readouterr().out
    assert "FAIL min_rows: 7 rows: below the minimum of 10" in out
    assert "gpt-4o-2024-08-06" in out and "$" in out
    version = DatasetVersion.objects.get()
    with pytest.raises(
        CommandError, match=r"^seven:v1 is NOT ready: failed gate\(s\) min_rows, min_train_rows, 0 format error\(s\)\.$"
    ):
        call_command("validate_dataset", str(version.pk))  # exits 1: a script or CI stops here
    assert "FAIL min_rows" in capsys.readouterr().out
    with pytest.raises(CommandError, match="No dataset with id or name 'nope'"):
        call_command("build_dataset", "nope")


def test_validate_dataset_exits_0_only_when_ready(capsys):
    base_models_seed()
    approved_examples(16)
    version = dataset_build(dataset=make_dataset(name="sixteen"))
    assert version.gates_passed
    call_command("validate_dataset", "sixteen:v1")
    assert capsys.readouterr().out.rstrip().endswith("ready")


def test_every_spelling_of_a_version_finds_it_and_a_miss_says_what_exists():
    from curation.selectors import DatasetVersionNotFound, dataset_version_by_ref

    task = make_task()
    tech = Dataset.objects.create(name="tech-2026", task=task)
    odd = Dataset.objects.create(name="a:v1@b", task=task)  # separators inside the name: the last one counts
    v1, v2 = (DatasetVersion.objects.create(dataset=tech, number=n, content_hash=f"{n}" * 64) for n in (1, 2))
    other = DatasetVersion.objects.create(dataset=odd, number=7, content_hash="7" * 64)
    for ref in ("tech-2026:v2", "tech-2026@2", str(v2.pk), " tech-2026:v2 ", "tech-2026 v2"):
        assert dataset_version_by_ref(ref=ref) == v2, ref
    assert dataset_version_by_ref(ref="a:v1@b:v7") == other and dataset_version_by_ref(ref="a:v1@b@7") == other

    with pytest.raises(DatasetVersionNotFound) as miss:
        dataset_version_by_ref(ref="tech-2026:v9")
    assert str(miss.value) == (
        "No dataset version 'tech-2026:v9': give NAME:vN (e.g. tech-2026:v3), NAME@N or the version id. "
        f"Versions of 'tech-2026': tech-2026:v1 (id {v1.pk}), tech-2026:v2 (id {v2.pk})."
    )
    with pytest.raises(
        DatasetVersionNotFound,
        match=r"No dataset is named 'tech'\. Dataset versions: a:v1@b:v7 "
        rf"\(id {other.pk}\), tech-2026:v1 \(id {v1.pk}\), tech-2026:v2",
    ):
        dataset_version_by_ref(ref="tech@1")
    for ref in ("999999", "tech-2026", "v2", ""):
        with pytest.raises(DatasetVersionNotFound, match="give NAME:vN .*, NAME@N or the version id"):
            dataset_version_by_ref(ref=ref)


def test_dataset_commands_take_every_spelling_and_name_the_accepted_forms(tmp_path, capsys):
    base_models_seed()
    approved_examples(16)
    version = dataset_build(dataset=make_dataset(name="sixteen"))
    for ref in ("sixteen:v1", "sixteen@1", str(version.pk)):
        call_command("validate_dataset", ref)
        call_command("export_dataset", ref, "--out", str(tmp_path / ref))
        assert (tmp_path / ref / "manifest.json").is_file()
    for command, extra in (("validate_dataset", []), ("export_dataset", ["--out", str(tmp_path / "x")])):
        with pytest.raises(
            CommandError,
            match=r"No dataset version 'sixteen:v2': give NAME:vN .* Versions of 'sixteen': "
            rf"sixteen:v1 \(id {version.pk}\)\.",
        ):
            call_command(command, "sixteen:v2", *extra)


def test_members_keep_page_hash_in_their_snapshot():
    examples = approved_examples(10)
    version = dataset_build(dataset=make_dataset())
    member = version.members.get(example=examples[0])
    part = member.messages[1]["content"][1]
    assert part["sha256"] == examples[0].drawing.pages.first().sha256
    assert member.split in {DatasetMember.Split.TRAIN, DatasetMember.Split.VALIDATION}


# --- admin ------------------------------------------------------------------------------------


def _changelist(model):
    from django.urls import reverse

    return reverse(f"admin:curation_{model}_changelist")


def test_manager_builds_a_version_from_the_admin_and_sees_the_readiness_panel(
    client, run_worker, django_capture_on_commit_callbacks
):
    from django.urls import reverse

    from tests.factories import make_user

    base_models_seed()
    examples = approved_examples(7)
    dataset = make_dataset(name="seven")
    client.force_login(make_user("Manager"))
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(_changelist("dataset"), {"action": "build_version", "_selected_action": [dataset.pk]})
    build_url = response["Location"]  # one dataset: straight to the build's page
    waiting = client.get(build_url).content.decode()
    assert "build queued" in waiting and "data-live-url" in waiting and not DatasetVersion.objects.exists()
    live = client.get(build_url.replace("/change/", "/live.json"))
    assert live.json()["status"] == "queued" and live.json()["active"] is True
    run_worker("default")
    page = client.get(build_url).content.decode()
    assert "7 rows: below the minimum of 10" in page and "data-live-url" not in page
    assert client.get(build_url.replace("/change/", "/live.json")).json()["active"] is False
    version = DatasetVersion.objects.get()
    assert reverse("admin:curation_datasetversion_change", args=[version.pk]) in page
    Example.objects.filter(pk=examples[0].pk).update(target="{}")  # (the frozen member keeps its target)
    page = client.get(reverse("admin:curation_datasetversion_change", args=[version.pk])).content.decode()
    assert "Not ready" in page and "FAIL" in page and "7 rows: below the minimum of 10" in page
    assert "gpt-4o-2024-08-06" in page and "2027-01-14" in page


def test_a_second_click_while_a_build_waits_queues_no_second_job(
    client, run_worker, django_capture_on_commit_callbacks
):
    import django_rq

    from curation.models import DatasetBuild
    from tests.factories import make_user

    approved_examples(10)
    dataset = make_dataset()
    client.force_login(make_user("Manager"))
    for _ in range(2):
        with django_capture_on_commit_callbacks(execute=True):
            response = client.post(
                _changelist("dataset"), {"action": "build_version", "_selected_action": [dataset.pk]}
            )
    build = DatasetBuild.objects.get()
    assert response["Location"].endswith(f"/{build.pk}/change/")
    assert django_rq.get_queue("default").count == 1
    assert "already under way" in client.get(response["Location"]).content.decode()
    run_worker("default")
    build.refresh_from_db()
    assert build.status == "done" and build.version == DatasetVersion.objects.get() and build.created_new
    assert (build.done, build.total) == (20, 20)  # two passes over the ten examples

    from curation.services.dataset_builds import dataset_build_run

    assert dataset_build_run(build_id=build.pk) is None  # a re-run of the job finds it done
    with django_capture_on_commit_callbacks(execute=True):  # after it finished, a click builds again
        client.post(_changelist("dataset"), {"action": "build_version", "_selected_action": [dataset.pk]})
    run_worker("default")
    again = DatasetBuild.objects.latest("pk")
    assert again.pk != build.pk and again.version == build.version and not again.created_new
    assert "nothing changed" in client.get(response["Location"].replace(str(build.pk), str(again.pk))).content.decode()


def test_problem_links_to_its_example_in_the_readiness_panel(client):
    from django.urls import reverse

    from tests.factories import make_user

    examples = approved_examples(11)
    _replace_page_file(examples[4], b"garbage")
    version = dataset_build(dataset=make_dataset())
    client.force_login(make_user("Manager"))
    page = client.get(reverse("admin:curation_datasetversion_change", args=[version.pk])).content.decode()
    assert reverse("admin:curation_example_change", args=[examples[4].pk]) in page
    assert "cannot be decoded" in page


def test_reviewer_cannot_build_a_version(client):
    from tests.factories import make_user

    approved_examples(10)
    dataset = make_dataset()
    client.force_login(make_user("Reviewer"))
    response = client.post(_changelist("dataset"), {"action": "build_version", "_selected_action": [dataset.pk]})
    assert response.status_code == 403
    assert not DatasetVersion.objects.exists()


def test_staff_with_view_only_cannot_run_the_build_action(client):
    from django.contrib.auth.models import Permission

    from tests.factories import make_user

    approved_examples(10)
    dataset = make_dataset()
    user = make_user(None)
    user.user_permissions.add(Permission.objects.get(codename="view_dataset"))
    client.force_login(user)
    client.post(_changelist("dataset"), {"action": "build_version", "_selected_action": [dataset.pk]})
    assert not DatasetVersion.objects.exists()


def test_base_model_admin_warns_when_dates_are_near_or_past(client):
    import datetime

    from curation.services.base_models import base_model_date_warning
    from tests.factories import make_user

    base_models_seed()
    model = BaseModel.objects.get(name="gpt-4o-2024-08-06")
    assert base_model_date_warning(model, today=datetime.date(2026, 1, 1)) == ""
    assert base_model_date_warning(model, today=datetime.date(2026, 12, 1)) == (
        "no new fine-tuning jobs after 2027-01-06 (in 36 days); stops serving on 2027-01-14 (in 44 days)"
    )
    assert "(past)" in base_model_date_warning(model, today=datetime.date(2027, 2, 1))
    client.force_login(make_user("Manager"))
    assert client.get(_changelist("basemodel")).status_code == 200


def test_example_over_the_token_limit_is_a_warning_not_an_error():
    base_models_seed()
    BaseModel.objects.exclude(name="gpt-4o-2024-08-06").update(active=False)
    task = make_task("support_reply")
    examples = [make_example(task=task, status=APPROVED, target=f"Answer {i}.") for i in range(10)]
    Example.objects.filter(pk=examples[0].pk).update(target="word " * 70_000)
    version = dataset_build(dataset=make_dataset(task, validation_fraction=0))
    assert [(p["example_id"], p["code"], p["level"]) for p in version.problems] == [
        (examples[0].pk, "too_many_tokens", "warning")
    ]
    assert "above the 65,536 limit of gpt-4o-2024-08-06" in version.problems[0]["message"]
    assert {g["name"]: g for g in version.gates}["format"]["passed"]


def test_build_seeds_base_models_when_there_are_none():
    approved_examples(10)
    version = dataset_build(dataset=make_dataset(validation_fraction=0))
    assert {
        "gpt-4.1-2025-04-14",
        "gpt-4.1-mini-2025-04-14",
        "gpt-4.1-nano-2025-04-14",
        "gpt-4o-2024-08-06",
        "gpt-4o-2024-11-20",
        "gpt-4o-mini-2024-07-18",
        "Qwen/Qwen3-VL-8B-Instruct",
    } <= set(version.cost_estimates)
    # Together publishes no training price: its cost is unknown, never $0.
    assert version.cost_estimates["Qwen/Qwen3-VL-8B-Instruct"]["usd"] is None
    assert version.cost_estimates["gpt-4o-2024-08-06"]["usd"] not in (None, "0.00")


def test_examples_a_provider_refused_are_flagged_audited_and_left_out_of_the_next_build(client, roles):
    from curation.models import ExampleChange
    from curation.selectors import dataset_version_export_lines, dataset_version_refused_members
    from curation.services.example_flags import examples_flag_provider_refused
    from tests.factories import make_user

    examples = approved_examples(14)
    dataset = make_dataset()
    first = dataset_build(dataset=dataset)
    train_lines = dataset_version_export_lines(version=first, split="train")
    refused = train_lines[3][1]  # the example on line 4 of train.jsonl
    flagged = examples_flag_provider_refused(reasons={refused: "Run 5, train line 4: image failed moderation"})
    assert [e.pk for e in flagged] == [refused]
    assert examples_flag_provider_refused(reasons={refused: "Run 5, train line 4: image failed moderation"}) == []
    assert ExampleChange.objects.filter(example_id=refused, field="provider_refused").count() == 1
    assert [row["line"] for row in dataset_version_refused_members(version=first)] == [4]

    second = dataset_build(dataset=dataset)
    assert second.number == 2
    assert refused not in set(second.members.values_list("example_id", flat=True))
    assert second.members.count() == len(examples) - 1

    client.force_login(make_user("Manager"))
    page = client.get(f"/admin/curation/datasetversion/{first.pk}/change/").content.decode()
    assert "1 example(s) dropped or refused by the provider" in page and "train line 4" in page
    review = client.get(f"/admin/curation/example/{refused}/review/").content.decode()
    assert "Refused by the provider" in review and "image failed moderation" in review


def test_a_ground_truth_change_waiting_for_the_reviewer_fails_a_gate_until_decided():
    """An approved example whose ground truth moved keeps the reviewer's target (never rewritten); the dataset
    build says so instead of training on it silently, and passes once the reviewer has chosen."""
    from curation.services.datasets import dataset_version_validate
    from curation.services.review import example_ground_truth_keep
    from tests.factories import make_user

    examples = approved_examples(14)
    waiting = examples[2]
    waiting.ground_truth_target = technology_target("P-2", minutes=99)
    waiting.save(update_fields=["ground_truth_target"])
    dataset = make_dataset()
    first = dataset_build(dataset=dataset)
    gate = {g["name"]: g for g in first.gates}["ground_truth_decided"]
    assert not gate["passed"] and gate["value"] == 1 and not first.gates_passed
    assert "wait for the reviewer's choice" in gate["message"] and "ground truth changed" in gate["message"]

    example_ground_truth_keep(example=waiting, user=make_user("Reviewer"))
    decided = dataset_version_validate(version=first)  # what validate_dataset does
    assert {g["name"]: g for g in decided.gates}["ground_truth_decided"]["passed"] and decided.gates_passed
