"""Whether a chat dataset fits each trainer's format (OpenAI, Azure OpenAI, Together), and why not. No ORM.

All three take the same chat JSONL with base64 images; their limits differ. Each rule names its source:
- OpenAI: `../shared/reference/openai-fine-tuning.md` (≤ 10 images per example, ≤ 10 MB, JPEG/PNG/WEBP,
  RGB or RGBA, no images in assistant messages, ≥ 10 examples, ≤ 50,000 examples with images).
- Azure OpenAI: learn.microsoft.com "Vision fine-tuning" (≤ 64 images per example, ≤ 10 MB, JPEG/PNG/WEBP,
  RGB or RGBA, no images from the assistant, ≥ 10 examples, ≤ 50,000 examples with images).
- Together: docs.together.ai/docs/fine-tuning/vision (base64 with a MIME prefix, URLs must be downloaded
  first; ≤ 10 images per example, ≤ 10 MB each, PNG/JPEG/WEBP, only user messages carry images; roles
  system, user, assistant); the SDK's file check needs at least 1 example.

The caller (curation.selectors.dataset_version_provider_fit) turns a dataset version into ExampleFacts.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from curation.openai_format import IMAGE_FORMATS, IMAGE_MODES, MAX_IMAGE_BYTES, MAX_IMAGES_PER_EXAMPLE, ROLES
from curation.provider_names import ProviderName

MB = 1024 * 1024


@dataclass(frozen=True)
class FormatRules:
    provider: str
    label: str
    max_images_per_example: int
    max_image_bytes: int
    image_formats: frozenset[str]
    image_roles: frozenset[str]
    roles: frozenset[str]
    min_examples: int
    max_examples_with_images: int | None
    image_modes: frozenset[str] | None = None  # None: the provider names no mode
    accepts_image_urls: bool = True
    source: str = ""


RULES: dict[str, FormatRules] = {
    # OpenAI's limits are the ones every line is checked against (curation.openai_format): one source for both.
    ProviderName.OPENAI: FormatRules(
        provider=ProviderName.OPENAI,
        label=ProviderName.OPENAI.label,
        max_images_per_example=MAX_IMAGES_PER_EXAMPLE,
        max_image_bytes=MAX_IMAGE_BYTES,
        image_formats=frozenset(IMAGE_FORMATS),
        image_roles=frozenset({"user", "system", "developer"}),
        roles=frozenset(ROLES),
        min_examples=10,
        max_examples_with_images=50_000,
        image_modes=frozenset(IMAGE_MODES),
        source="OpenAI fine-tuning reference (shared/reference/openai-fine-tuning.md)",
    ),
    ProviderName.AZURE: FormatRules(
        provider=ProviderName.AZURE,
        label=ProviderName.AZURE.label,
        max_images_per_example=64,
        max_image_bytes=10 * MB,
        image_formats=frozenset({"JPEG", "PNG", "WEBP"}),
        image_roles=frozenset({"user", "system", "developer"}),
        roles=frozenset({"system", "developer", "user", "assistant", "tool"}),
        min_examples=10,
        max_examples_with_images=50_000,
        image_modes=frozenset({"RGB", "RGBA"}),
        source="Azure OpenAI vision fine-tuning (learn.microsoft.com)",
    ),
    ProviderName.TOGETHER: FormatRules(
        provider=ProviderName.TOGETHER,
        label=ProviderName.TOGETHER.label,
        max_images_per_example=10,
        max_image_bytes=10 * MB,
        image_formats=frozenset({"JPEG", "PNG", "WEBP"}),
        image_roles=frozenset({"user"}),
        roles=frozenset({"system", "user", "assistant"}),
        min_examples=1,
        max_examples_with_images=None,
        accepts_image_urls=False,
        source="Together vision fine-tuning (docs.together.ai/docs/fine-tuning/vision)",
    ),
}


@dataclass(frozen=True)
class ImageFact:
    role: str
    source: str  # "page" (a rendered drawing page), "data" (a base64 data URL) or "url" (http/https)
    format: str | None = None  # JPEG, PNG, WEBP, ... (None: not known)
    size_bytes: int | None = None
    mode: str | None = None


@dataclass
class ExampleFacts:
    line: int  # 1-based line in its split's file
    split: str
    roles: list[str] = field(default_factory=list)
    images: list[ImageFact] = field(default_factory=list)


def _where(examples: list[ExampleFacts], limit: int = 3) -> str:
    shown = ", ".join(f"{e.split} line {e.line}" for e in examples[:limit])
    more = f" and {len(examples) - limit} more" if len(examples) > limit else ""
    return f" ({shown}{more})"


def provider_fit(examples: Iterable[ExampleFacts], rules: FormatRules, *, train_rows: int) -> list[str]:
    """Why the dataset does not fit `rules`, one sentence per kind of problem ([]: it fits)."""
    examples = list(examples)
    problems: dict[str, list[ExampleFacts]] = {}
    with_images = 0

    def note(key: str, example: ExampleFacts) -> None:
        bucket = problems.setdefault(key, [])
        if not bucket or bucket[-1] is not example:
            bucket.append(example)

    for example in examples:
        for role in example.roles:
            if role not in rules.roles:
                note(f"role:{role}", example)
        if example.images:
            with_images += 1
        if len(example.images) > rules.max_images_per_example:
            note("too_many_images", example)
        for image in example.images:
            if image.role not in rules.image_roles:
                note(f"image_role:{image.role}", example)
            if image.source == "url" and not rules.accepts_image_urls:
                note("image_url", example)
            if image.size_bytes is not None and image.size_bytes > rules.max_image_bytes:
                note("image_too_large", example)
            if image.format is not None and image.format.upper() not in rules.image_formats:
                note(f"image_format:{image.format.upper()}", example)
            if rules.image_modes is not None and image.mode is not None and image.mode not in rules.image_modes:
                note(f"image_mode:{image.mode}", example)

    reasons = []
    if train_rows < rules.min_examples:
        reasons.append(f"{train_rows} training examples: {rules.label} needs at least {rules.min_examples}")
    if rules.max_examples_with_images is not None and with_images > rules.max_examples_with_images:
        reasons.append(
            f"{with_images:,} examples with images: {rules.label} takes at most {rules.max_examples_with_images:,}"
        )
    limit_mb = rules.max_image_bytes // MB
    for key, hits in problems.items():
        kind, _, value = key.partition(":")
        one = len(hits) == 1
        n = f"{len(hits)} example{'' if one else 's'}"
        have, use, link = ("has", "uses", "links") if one else ("have", "use", "link")
        if kind == "role":
            reasons.append(f"{n} {use} the role {value!r}, which {rules.label} does not take" + _where(hits))
        elif kind == "too_many_images":
            reasons.append(
                f"{n} {have} more than {rules.max_images_per_example} images "
                f"({rules.label}'s limit per example)" + _where(hits)
            )
        elif kind == "image_role":
            allowed = " or ".join(sorted(rules.image_roles))
            reasons.append(
                f"{n} {have} images in {value} messages: {rules.label} takes images only in {allowed} "
                f"messages" + _where(hits)
            )
        elif kind == "image_url":
            reasons.append(
                f"{n} {link} images by URL: {rules.label} needs them base64-encoded in the file" + _where(hits)
            )
        elif kind == "image_too_large":
            reasons.append(f"{n} {have} an image above {limit_mb} MB ({rules.label}'s limit per image)" + _where(hits))
        elif kind == "image_format":
            accepted = "/".join(sorted(rules.image_formats))
            reasons.append(f"{n} {have} {value} images: {rules.label} takes {accepted}" + _where(hits))
        elif kind == "image_mode":
            reasons.append(f"{n} {have} images in mode {value}: {rules.label} needs RGB or RGBA" + _where(hits))
    return reasons
