"""Rows for the benchmarks that measure pages (admin.py, load.py): tables, roles, and examples in bulk.

Call after Django is set up (`_django.django_throwaway`, or load.py's own settings). Every example gets its own
drawing with one page, referenced from its chat the way the build step references pages (`page:<id>`).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable


def tables_create() -> None:
    """Tables straight from the models (as the test suite's --nomigrations), then the roles.

    The benchmarks measure pages, and must run whether or not the migration files are there yet."""
    from django.apps import apps
    from django.conf import settings
    from django.core.management import call_command

    from gestima.roles import roles_sync

    settings.MIGRATION_MODULES = {app.label: None for app in apps.get_app_configs()}
    call_command("migrate", run_syncdb=True, verbosity=0)
    roles_sync()


def target_text(part_number: str) -> str:
    """The JSON target of a two-operation technology answer for `part_number` (valid against the task)."""
    from tests.factories import technology_target

    return json.dumps(technology_target(part_number))


def examples_create(
    *,
    task,
    numbers: Iterable[int],
    prefix: str,
    fields: Callable[[int, object], dict] = lambda n, drawing: {},
    batch_size: int = 2000,
) -> list:
    """One rendered drawing (`<prefix>-<n:06d>`, one page) and one example per number, in bulk; `fields(n, drawing)`
    gives each example's own columns (status, tags, scores...) on top of the task, drawing, chat, target,
    group key and content hash. Returns the examples, in the order of `numbers`."""
    from curation.models import Drawing, DrawingPage, Example

    numbers = list(numbers)
    drawings = Drawing.objects.bulk_create(
        [
            Drawing(
                file=f"drawings/{prefix}-{n:06d}.pdf",
                original_name=f"{prefix}-{n:06d}.pdf",
                sha256=f"{n:064x}",
                size_bytes=1000,
                part_number=f"{prefix}-{n:06d}",
                page_count=1,
                has_text_layer=True,
                status=Drawing.Status.RENDERED,
            )
            for n in numbers
        ],
        batch_size=batch_size,
    )
    pages = DrawingPage.objects.bulk_create(
        [
            DrawingPage(
                drawing=drawing,
                number=1,
                image=f"pages/{drawing.part_number}-p1.png",
                width=2048,
                height=1448,
                format="png",
                bytes=250_000,
                sha256=f"{n:064x}",
                phash=f"{n:016x}",
            )
            for n, drawing in zip(numbers, drawings)
        ],
        batch_size=batch_size,
    )
    return Example.objects.bulk_create(
        [
            Example(
                task=task,
                drawing=drawing,
                target=target_text(drawing.part_number),
                messages=[
                    {"role": "system", "content": task.compact_prompt},
                    {
                        "role": "user",
                        "content": [
                            {"type": "text", "text": f"Drawing of part {drawing.part_number}."},
                            {"type": "image_url", "image_url": {"url": f"page:{page.pk}", "detail": "high"}},
                        ],
                    },
                ],
                group_key=drawing.part_number,
                content_hash=f"{n:064x}",
                **fields(n, drawing),
            )
            for n, drawing, page in zip(numbers, drawings, pages)
        ],
        batch_size=batch_size,
    )
