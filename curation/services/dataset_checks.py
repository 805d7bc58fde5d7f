"""Per-member checks of a dataset version: page images read once, format checks, token counts per base model.

Shared by the build (which stores the figures) and the training cost (which counts again for a model added
after the build).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from curation.models import BaseModel, DrawingPage
from curation.openai_format import (
    ImageProblem,
    build_line,
    image_inspect,
    iter_image_parts,
    page_ref_ids,
    part_page_id,
    validate_line,
)
from curation.services.base_models import base_models_seed
from curation.services.page_images import ExportError, PageImages, page_fingerprint, page_read
from curation.services.tasks import TargetInvalid, target_validate
from curation.tokens import ImageScheme, image_tokens, messages_text_tokens

DEFAULT_ENCODING = "o200k_base"
DEFAULT_SCHEME = ImageScheme()  # gpt-4o / gpt-4.1 tiles: the figures stored per member
BULK = 500


@dataclass
class _PageCheck:
    sha256: str = ""
    crc32: int = 0
    bytes: int = 0
    mtime_ns: int | None = None
    width: int = 0
    height: int = 0
    problem: str = ""


class PageChecks:
    """Reads each page image once (the one page loader): its fingerprint, size and OpenAI's image checks."""

    def __init__(self):
        self.cache: dict[int, _PageCheck] = {}

    def prefetch(self, page_ids):
        wanted = set(page_ids) - set(self.cache)
        for page in PageImages(wanted).pages.values():
            self.cache[page.pk] = self._page_check(page)
        for page_id in wanted - set(self.cache):
            self.cache[page_id] = _PageCheck(problem=f"page {page_id} no longer exists")

    @staticmethod
    def _page_check(page: DrawingPage) -> _PageCheck:
        try:
            data = page_read(page)
        except ExportError as exc:
            return _PageCheck(problem=str(exc))
        fingerprint = page_fingerprint(page, data)
        check = _PageCheck(
            sha256=fingerprint["sha256"],
            crc32=fingerprint["crc32"],
            bytes=fingerprint["bytes"],
            mtime_ns=fingerprint.get("mtime_ns"),
        )
        try:
            info = image_inspect(data)
            check.width, check.height = info.width, info.height
        except ImageProblem as exc:
            check.problem = f"page {page.pk}: {exc}"
        return check

    def get(self, page_id: int) -> _PageCheck:
        if page_id not in self.cache:
            self.prefetch([page_id])
        return self.cache[page_id]


def snapshot_messages(messages: list, pages: PageChecks) -> list:
    """A deep copy where each page image part carries the fingerprint (sha256, crc32, size) of the checked bytes."""
    snapshot = json.loads(json.dumps(messages))
    for _, part in iter_image_parts(snapshot):
        page_id = part_page_id(part)
        if page_id is not None:
            check = pages.get(page_id)
            part.update(sha256=check.sha256, crc32=check.crc32, bytes=check.bytes)
            if check.mtime_ns is not None:
                part["mtime_ns"] = check.mtime_ns
    return snapshot


@dataclass
class ModelSpec:
    name: str
    encoding: str
    scheme: ImageScheme
    price: object
    max_tokens: int
    supports_vision: bool
    jobs_end_date: object = None
    shutdown_date: object = None


def model_spec_of(m: BaseModel) -> ModelSpec:
    return ModelSpec(
        m.name,
        m.encoding,
        ImageScheme(m.image_tokens, m.patch_multiplier),
        m.training_price_per_1m,
        m.max_tokens_per_example,
        m.supports_vision,
        m.jobs_end_date,
        m.shutdown_date,
    )


def model_specs_active() -> list[ModelSpec]:
    if not BaseModel.objects.exists():
        base_models_seed()  # a fresh install still shows costs; admin edits are never overwritten
    return [model_spec_of(m) for m in BaseModel.objects.filter(active=True).order_by("name")]


@dataclass
class MemberFacts:
    example_id: int
    split: str
    messages: list
    target: str
    text_tokens: int = 0
    image_tokens: int = 0
    tokens_by_model: dict = field(default_factory=dict)
    problems: list = field(default_factory=list)


def _member_facts(example_id, split, messages, target, task, pages: PageChecks, models: list[ModelSpec]) -> MemberFacts:
    facts = MemberFacts(example_id, split, messages, target)
    line = build_line(messages, target)
    for problem in validate_line(line, check_images=False):
        facts.problems.append({"code": problem["code"], "message": problem["message"], "level": "error"})
    images = []
    for _, part in iter_image_parts(messages):
        detail = (part.get("image_url") or {}).get("detail", "auto")
        page_id = part_page_id(part)
        if page_id is None:
            continue
        check = pages.get(page_id)
        if check.problem:
            facts.problems.append({"code": "invalid_image", "message": check.problem, "level": "error"})
        elif part.get("sha256") and part["sha256"] != check.sha256:
            facts.problems.append(
                {
                    "code": "image_changed",
                    "level": "error",
                    "message": f"page {page_id} changed since the version was built: rebuild the dataset",
                }
            )
        images.append((check.width, check.height, detail))
    try:
        target_validate(task=task, target_text=target)
    except TargetInvalid as exc:
        facts.problems.append(
            {"code": "target_invalid", "message": f"target does not fit the task schema: {exc}", "level": "error"}
        )
    text_cache = {}
    for model in models or [ModelSpec("default", DEFAULT_ENCODING, DEFAULT_SCHEME, 0, 65536, True)]:
        if model.encoding not in text_cache:
            text_cache[model.encoding] = messages_text_tokens(line["messages"], model.encoding)
        image_total = sum(image_tokens(w, h, d, model.scheme) for w, h, d in images if w and h)
        total = text_cache[model.encoding] + image_total
        facts.tokens_by_model[model.name] = total
        if total > model.max_tokens:
            facts.problems.append(
                {
                    "code": "too_many_tokens",
                    "level": "warning",
                    "message": f"{total:,} tokens: above the {model.max_tokens:,} limit of {model.name} "
                    "(it would be truncated)",
                }
            )
    facts.text_tokens = text_cache.get(DEFAULT_ENCODING) or messages_text_tokens(line["messages"], DEFAULT_ENCODING)
    facts.image_tokens = sum(image_tokens(w, h, d, DEFAULT_SCHEME) for w, h, d in images if w and h)
    return facts


def members_check(dataset, rows, pages, models, progress=None):
    """rows: [(example_id, split, messages snapshot, target)] in file order -> facts."""
    task = dataset.task
    facts = []
    for start in range(0, len(rows), BULK):
        chunk = rows[start : start + BULK]
        pages.prefetch(pid for row in chunk for pid in page_ref_ids(row[2]))
        facts.extend(_member_facts(*row, task, pages, models) for row in chunk)
        if progress is not None:
            progress(len(facts))
    return facts
