"""Makers for the evaluation tests: dataset versions with validation members, a stand-in answering plans.

(Kept beside the tests that use them; the shared makers are in tests/factories.py.)
"""

from __future__ import annotations

import json
from decimal import Decimal

from curation.models import BaseModel, Dataset, DatasetMember, DatasetVersion, Example
from tests import factories
from tests.factories import make_drawing, make_example, make_task, technology_target

MODEL = "gpt-4o-2024-08-06"
FT_MODEL = "ft:gpt-4o-2024-08-06:shop::abc123"


def make_priced_base_model(name: str = MODEL, *, input_price="2.5", output_price="10") -> BaseModel:
    """The base model with inference prices (the seeded rows carry training prices only)."""
    return factories.make_base_model(
        name, price="25", input_price_per_1m=Decimal(input_price), output_price_per_1m=Decimal(output_price)
    )


def make_plan_dataset_version(
    *, task=None, n_validation: int = 5, n_train: int = 2, minutes=None, tags=None
) -> DatasetVersion:
    """A frozen version whose members snapshot real examples (each with a rendered one-page drawing).

    `minutes(i)` gives the target machine time of validation example i (default 10 + i).
    """
    task = task or make_task()
    dataset = Dataset.objects.create(name=f"ds-{Dataset.objects.count() + 1}", task=task)
    version = DatasetVersion.objects.create(dataset=dataset, number=1, content_hash="c0ffee" * 10 + "abcd")
    position = 0
    for split, count in (("validation", n_validation), ("train", n_train)):
        for i in range(count):
            drawing = make_drawing(part_number=f"{split[:1].upper()}-{i:03d}-{version.pk}")
            target = technology_target(drawing.part_number, minutes=(minutes(i) if minutes else 10 + i))
            example = make_example(
                task=task,
                drawing=drawing,
                target=target,
                status=Example.Status.APPROVED,
                tags=(tags(i) if tags else None),
            )
            DatasetMember.objects.create(
                version=version,
                example=example,
                split=split,
                position=position,
                messages=example.messages,
                target=example.target,
            )
            position += 1
    return version


def targets_by_part(version: DatasetVersion) -> dict[str, dict]:
    """{part number: target} of a version, read up front: the stand-in's threads must not touch the database."""
    return {json.loads(m.target)["part_number"]: json.loads(m.target) for m in version.members.all()}


def use_standin(settings, api) -> None:
    """Point the real openai provider at the stand-in (secrets come from settings/env, never code)."""
    settings.OPENAI_API_KEY = "test-key"
    settings.OPENAI_BASE_URL = api.base_url


def make_done_eval_run(
    version: DatasetVersion,
    *,
    model_name: str = MODEL,
    kind: str = "base",
    factor=1.0,
    invalid: int = 0,
    split: str = "validation",
    training_run=None,
):
    """A finished eval run without the API: every answer (of `split`) is the target with machine times × factor
    (`factor` may be a function of the member position); the first `invalid` answers are invalid JSON."""
    from finetune.models import EvalResult, EvalRun
    from finetune.services.eval_results import eval_run_finish
    from finetune.services.evals import eval_prompt

    task = version.dataset.task
    prompt_kind, prompt_text = eval_prompt(task=task, model_kind=kind)
    members = list(version.members.filter(split=split).order_by("position"))
    run = EvalRun.objects.create(
        task=task,
        model_name=model_name,
        model_kind=kind,
        provider="openai",
        dataset_version=version,
        prompt_kind=prompt_kind,
        prompt_text=prompt_text,
        status=EvalRun.Status.RUNNING,
        total=len(members),
        split=split,
        training_run=training_run,
    )
    for i, member in enumerate(members):
        if i < invalid:
            EvalResult.objects.create(
                eval_run=run,
                member=member,
                example_id=member.example_id,
                raw_output="oops",
                status="error",
                error_kind="invalid_json",
            )
            continue
        plan = json.loads(member.target)
        f = factor(member.position) if callable(factor) else factor
        for op in plan["operations"]:
            op["machine_time_min_per_piece"] = op["machine_time_min_per_piece"] * f
        EvalResult.objects.create(
            eval_run=run, member=member, example_id=member.example_id, raw_output=json.dumps(plan), parsed=plan
        )
    return eval_run_finish(eval_run=run)
