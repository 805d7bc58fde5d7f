"""Small factories for tests: users in roles, tasks from presets, drawings with real page images, examples.

Append new makers here rather than writing them again in a test module.
"""

import hashlib
import io
import json
import itertools

from django.contrib.auth.models import Group, User
from django.core.files.base import ContentFile
from PIL import Image, ImageDraw

from curation.models import Drawing, DrawingPage, Example, Task
from gestima.roles import roles_sync
from curation.services.examples import content_hash
from curation.task_presets import PRESETS

_seq = itertools.count(1)


def make_user(
    role: str | None = None, *, username: str | None = None, password: str = "pw-Gestima-1", superuser=False
) -> User:
    """A staff user in the Reviewer or Manager group (role=None: staff without a group)."""
    username = username or f"{(role or 'user').lower()}{next(_seq)}"
    if superuser:
        return User.objects.create_superuser(username, password=password)
    user = User.objects.create_user(username, password=password, is_staff=True)
    if role:
        roles_sync()
        user.groups.add(Group.objects.get(name=role))
    return user


def make_task(slug: str = "technology_builder", **overrides) -> Task:
    preset = {**PRESETS[slug], **overrides}
    task, _ = Task.objects.get_or_create(slug=preset["slug"], defaults=preset)
    return task


def page_image_bytes(*, width=1200, height=850, seed=0, fmt="PNG") -> bytes:
    """A drawing-like page: white sheet, frame, a few lines and a title block (different per seed)."""
    image = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(image)
    draw.rectangle([10, 10, width - 10, height - 10], outline="black", width=3)
    for i in range(6):
        x = 60 + (seed * 37 + i * 131) % (width - 200)
        y = 60 + (seed * 53 + i * 89) % (height - 250)
        draw.rectangle([x, y, x + 120 + 10 * i, y + 80], outline="black", width=2)
    draw.rectangle([width - 420, height - 140, width - 12, height - 12], outline="black", width=2)
    draw.text((width - 400, height - 120), f"PART {seed}", fill="black")
    buffer = io.BytesIO()
    image.save(buffer, fmt)
    return buffer.getvalue()


def make_drawing(
    *, part_number: str | None = None, pages: int = 1, status=Drawing.Status.RENDERED, seed: int | None = None, **fields
) -> Drawing:
    """A drawing as rendering leaves it: a (tiny) PDF file and real PNG page images."""
    n = next(_seq)
    seed = n if seed is None else seed
    part_number = part_number or f"P-{n:05d}"
    pdf = b"%PDF-1.4\n% test drawing " + part_number.encode() + b"\n%%EOF\n"
    drawing = Drawing(
        original_name=f"{part_number}.pdf",
        sha256=hashlib.sha256(pdf + str(n).encode()).hexdigest(),
        size_bytes=len(pdf),
        part_number=part_number,
        page_count=pages,
        has_text_layer=True,
        status=status,
        **fields,
    )
    drawing.file.save(f"{part_number}.pdf", ContentFile(pdf), save=False)
    drawing.save()
    if status == Drawing.Status.RENDERED:
        for number in range(1, pages + 1):
            data = page_image_bytes(seed=seed * 10 + number)
            page = DrawingPage(
                drawing=drawing,
                number=number,
                width=1200,
                height=850,
                format="png",
                bytes=len(data),
                sha256=hashlib.sha256(data).hexdigest(),
                phash=f"{seed * 10 + number:016x}",
            )
            page.image.save(f"{part_number}-p{number}.png", ContentFile(data), save=False)
            page.save()
    return drawing


def technology_target(part_number: str, *, material="C45", minutes=12.5, setup=30.0) -> dict:
    return {
        "part_number": part_number,
        "material": material,
        "machines": ["NZX 2000", "DMU 50"],
        "operations": [
            {"machine": "NZX 2000", "operation": "turning", "machine_time_min_per_piece": minutes, "setup_min": setup},
            {
                "machine": "DMU 50",
                "operation": "milling",
                "machine_time_min_per_piece": round(minutes / 2, 2),
                "setup_min": setup,
            },
        ],
    }


def make_example(
    *,
    task: Task | None = None,
    drawing: Drawing | None = None,
    target: dict | str | None = None,
    status=Example.Status.PENDING,
    tags: dict | None = None,
    **fields,
) -> Example:
    """An example as the build step makes it: compact system prompt, user text, page image refs, target JSON."""
    task = task or make_task()
    if task.uses_images and drawing is None:
        drawing = make_drawing()
    part_number = drawing.part_number if drawing else f"T-{next(_seq)}"
    if target is None:
        target = technology_target(part_number) if task.slug == "technology_builder" else "Thanks, done."
    target_text = target if isinstance(target, str) else json.dumps(target, ensure_ascii=False)
    user_content = [{"type": "text", "text": f"Drawing of part {part_number}."}]
    if drawing is not None:
        for page in drawing.pages.all():
            user_content.append(
                {"type": "image_url", "image_url": {"url": f"page:{page.pk}", "detail": task.image_detail}}
            )
    messages = [
        {"role": "system", "content": task.compact_prompt or task.system_prompt},
        {"role": "user", "content": user_content if drawing is not None else f"Question {part_number}"},
    ]
    digest = content_hash(messages, target_text)
    return Example.objects.create(
        task=task,
        drawing=drawing,
        messages=messages,
        target=target_text,
        status=status,
        tags=tags
        if tags is not None
        else {"industry": "automotive", "machine": ["NZX 2000", "DMU 50"], "material": "C45"},
        group_key=fields.pop("group_key", part_number),
        content_hash=fields.pop("content_hash", digest),
        schema_version=task.schema_version,
        **fields,
    )


def make_ground_truth(part_number: str, *, operations: list[dict] | None = None, high_cv: bool = False, **fields):
    """Ground truth as the trimmed-mean step stores it: one row per (machine, operation) with n and CV."""
    from curation.models import GroundTruth

    operations = (
        operations
        if operations is not None
        else [
            {
                "machine": "NZX 2000",
                "operation": "turning",
                "machine_time_min_per_piece": 12.0,
                "setup_min": 30.0,
                "n": 8,
                "cv": 0.12,
            },
            {
                "machine": "DMU 50",
                "operation": "milling",
                "machine_time_min_per_piece": 6.5,
                "setup_min": 25.0,
                "n": 8,
                "cv": 0.5 if high_cv else 0.2,
            },
        ]
    )
    cvs = [row["cv"] for row in operations if row.get("cv") is not None]
    return GroundTruth.objects.create(
        part_number=part_number,
        operations=operations,
        record_count=sum(row.get("n", 0) for row in operations),
        max_cv=max(cvs) if cvs else None,
        high_cv=high_cv,
        **fields,
    )


# --- training runs (issue 5) ---------------------------------------------------------------------


def make_base_model(
    name: str = "gpt-4o-mini-2024-07-18", *, price="3.00", jobs_end_date=None, shutdown_date=None, **fields
):
    """A base model row as the admin keeps them (price per 1M training tokens, dates)."""
    import datetime
    from decimal import Decimal

    from curation.models import BaseModel

    defaults = {
        "training_price_per_1m": Decimal(str(price)),
        "jobs_end_date": jobs_end_date or datetime.date(2027, 1, 6),
        "shutdown_date": shutdown_date,
        **fields,
    }
    row, _ = BaseModel.objects.update_or_create(name=name, defaults=defaults)
    return row


def make_dataset_version(
    *,
    n_train: int = 10,
    n_validation: int = 2,
    task: Task | None = None,
    gates_passed: bool = True,
    tokens_per_example: int = 1000,
    epochs: int = 3,
    name: str | None = None,
    gates=None,
):
    """A frozen dataset version with approved text examples as members (split, positions, token counts)."""
    from curation.models import Dataset, DatasetMember, DatasetVersion

    task = task or make_task("support_reply")
    n = next(_seq)
    dataset = Dataset.objects.create(name=name or f"dataset-{n}", task=task, epochs=epochs)
    version = DatasetVersion.objects.create(
        dataset=dataset,
        number=1,
        content_hash=hashlib.sha256(f"version-{n}".encode()).hexdigest(),
        counts={"train": n_train, "validation": n_validation},
        gates_passed=gates_passed,
        gates=gates
        if gates is not None
        else [
            {
                "name": "min_rows",
                "passed": gates_passed,
                "value": n_train,
                "threshold": 10,
                "message": "" if gates_passed else f"only {n_train} rows (need 10)",
            }
        ],
        tokens={
            "train": {"text": n_train * tokens_per_example, "image": 0, "total": n_train * tokens_per_example},
            "validation": {
                "text": n_validation * tokens_per_example,
                "image": 0,
                "total": n_validation * tokens_per_example,
            },
        },
    )
    for i in range(n_train + n_validation):
        example = make_example(task=task, status=Example.Status.APPROVED, target=f"Answer {n}-{i}: tighten the chuck.")
        split = DatasetMember.Split.TRAIN if i < n_train else DatasetMember.Split.VALIDATION
        DatasetMember.objects.create(
            version=version,
            example=example,
            split=split,
            position=i,
            messages=example.messages,
            target=example.target,
            text_tokens=tokens_per_example,
        )
    return version
