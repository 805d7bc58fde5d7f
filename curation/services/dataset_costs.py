"""Training cost: the one figure the dataset page, the launch confirmation and the budget guard show."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from curation.models import BaseModel, DatasetMember, DatasetVersion
from curation.services.dataset_checks import (
    BULK,
    DEFAULT_ENCODING,
    ModelSpec,
    PageChecks,
    members_check,
    model_spec_of,
)
from curation.tokens import training_cost

NO_IMAGES = "this model does not take images for fine-tuning"


@dataclass(frozen=True)
class TrainingCost:
    """What training `model` on a version costs: its own count of the train split's tokens × epochs × price."""

    model: str
    train_tokens: int  # one epoch, counted the way this model counts (its encoding, its image scheme)
    epochs: int
    price_per_1m: Decimal | None  # None: the provider publishes no price
    usd: Decimal | None  # None: unknown (shown as "unknown", never $0)
    problem: str = ""  # why this model cannot train on the version at all ("" when it can)
    validation_tokens_billed: int = 0  # validation passes a provider bills (Together), 0 for OpenAI

    @property
    def billed_tokens(self) -> int:
        return self.train_tokens * self.epochs + self.validation_tokens_billed


def training_cost_estimate(
    *,
    model: str,
    price_per_1m,
    supports_vision: bool,
    train_tokens: int,
    epochs: int,
    has_images: bool,
    validation_tokens_billed: int = 0,
) -> TrainingCost:
    """The cost rule, in one place: price per 1M training tokens × (train tokens × epochs + billed validation
    tokens), to the cent; an unknown price gives an unknown cost."""
    epochs = max(int(epochs or 1), 1)
    price = Decimal(str(price_per_1m)) if price_per_1m is not None else None
    billed = int(train_tokens) * epochs + int(validation_tokens_billed)
    return TrainingCost(
        model=model,
        train_tokens=int(train_tokens),
        epochs=epochs,
        price_per_1m=price,
        usd=training_cost(tokens=billed, price_per_1m=price, epochs=1) if price is not None else None,
        problem=NO_IMAGES if has_images and not supports_vision else "",
        validation_tokens_billed=int(validation_tokens_billed),
    )


def _version_has_images(version: DatasetVersion) -> bool:
    tokens = version.tokens or {}
    return any(((tokens.get(split) or {}).get("image") or 0) > 0 for split in ("train", "validation"))


def _version_train_tokens(version: DatasetVersion, model: ModelSpec, has_images: bool) -> int:
    """The train split's tokens as `model` counts them: stored at build for every active model; counted
    again from the frozen members for a model added (or activated) after the build."""
    tokens = version.tokens or {}
    by_model = tokens.get("by_model") or {}
    if model.name in by_model:
        return int(by_model[model.name].get("train") or 0)
    train = tokens.get("train") or {}
    if train.get("total") and not has_images and model.encoding == DEFAULT_ENCODING:
        return int(train["total"])  # text only, the encoding the stored totals use: the same count
    members = version.members.filter(split=DatasetMember.Split.TRAIN).order_by("position")
    rows = [
        tuple(m) for m in members.values_list("example_id", "split", "messages", "target").iterator(chunk_size=BULK)
    ]
    facts = members_check(version.dataset, rows, PageChecks(), [model])
    return sum(f.tokens_by_model.get(model.name, 0) for f in facts)


def dataset_version_training_cost(
    *,
    version: DatasetVersion,
    base_model: BaseModel,
    epochs: int | None = None,
    validation_passes: int = 0,
    scale: int = 1,
) -> TrainingCost:
    """Training `base_model` on the version's train split for `epochs` (default: the dataset's own), plus
    `validation_passes` over the validation split where the provider bills them (Together). `scale` projects a
    dataset `scale` times this size: the version's token counts multiplied, not counted again."""
    has_images = _version_has_images(version)
    model = model_spec_of(base_model)
    validation = 0
    if validation_passes:
        tokens = version.tokens or {}
        by_model = (tokens.get("by_model") or {}).get(model.name) or {}
        validation = int(by_model.get("validation") or (tokens.get("validation") or {}).get("total") or 0)
    return training_cost_estimate(
        model=model.name,
        price_per_1m=model.price,
        supports_vision=model.supports_vision,
        train_tokens=_version_train_tokens(version, model, has_images) * scale,
        epochs=epochs or version.dataset.epochs or 1,
        has_images=has_images,
        validation_tokens_billed=validation * validation_passes * scale,
    )


def dataset_version_training_costs(*, version: DatasetVersion) -> list[tuple[BaseModel, TrainingCost]]:
    """Every active base model's cost on the version at the dataset's epochs, with today's prices."""
    return [
        (m, dataset_version_training_cost(version=version, base_model=m))
        for m in BaseModel.objects.filter(active=True).order_by("name")
    ]
