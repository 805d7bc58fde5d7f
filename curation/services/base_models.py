"""Base models one can fine-tune: seeded from the reference's prices and dates, then edited as data.

Also the one lifecycle rule of the project: which base model any model name comes from, its
"no new fine-tuning after" and shutdown dates, today's date (one clock) and the warning every page shows.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from decimal import Decimal

from django.conf import settings
from django.utils import timezone

from curation.models import BaseModel
from curation.provider_names import ProviderName

# No new OpenAI fine-tuning jobs for anyone after this date (reference: platform status).
OPENAI_JOBS_END = datetime.date(2027, 1, 6)
# These snapshots stop serving on this date, with every model fine-tuned on them (reference: deprecations).
OPENAI_SHUTDOWN = datetime.date(2027, 1, 14)
SHUTDOWN_SNAPSHOTS = (
    "gpt-4o-2024-08-06",
    "gpt-4o-2024-11-20",
    "gpt-4o-mini-2024-07-18",
    "gpt-4.1-2025-04-14",
    "gpt-4.1-mini-2025-04-14",
)

SEED = [
    {
        "name": "gpt-4.1-2025-04-14",
        "training_price_per_1m": Decimal("25.00"),
        "image_tokens": BaseModel.ImageTokens.TILES,
    },
    {
        "name": "gpt-4.1-mini-2025-04-14",
        "training_price_per_1m": Decimal("5.00"),
        "image_tokens": BaseModel.ImageTokens.PATCHES,
        "patch_multiplier": 1.62,
    },
    {
        "name": "gpt-4.1-nano-2025-04-14",
        "training_price_per_1m": Decimal("1.50"),
        "image_tokens": BaseModel.ImageTokens.PATCHES,
        "patch_multiplier": 2.46,
    },
    {
        "name": "gpt-4o-2024-08-06",
        "training_price_per_1m": Decimal("25.00"),
        "image_tokens": BaseModel.ImageTokens.TILES,
    },
    {
        "name": "gpt-4o-2024-11-20",
        "training_price_per_1m": Decimal("25.00"),
        "image_tokens": BaseModel.ImageTokens.TILES,
    },
    # gpt-4o-mini fine-tuning is text-only; its image tokens (if ever used) follow the mini tile scheme.
    {
        "name": "gpt-4o-mini-2024-07-18",
        "training_price_per_1m": Decimal("3.00"),
        "image_tokens": BaseModel.ImageTokens.TILES_MINI,
        "supports_vision": False,
    },
]
SEED = [{**spec, "shutdown_date": OPENAI_SHUTDOWN} if spec["name"] in SHUTDOWN_SNAPSHOTS else spec for spec in SEED]

# Inference prices, USD per 1M tokens (reference: "Tokens and cost", standard tier): input, output for the
# base model, then input, output for models fine-tuned from it. Seeded by a data migration, edited as data.
INFERENCE_PRICES = {
    "gpt-4o-2024-08-06": ("2.50", "10.00", "3.75", "15.00"),
    "gpt-4o-2024-11-20": ("2.50", "10.00", "3.75", "15.00"),
    "gpt-4o-mini-2024-07-18": ("0.15", "0.60", "0.30", "1.20"),
    "gpt-4.1-2025-04-14": ("2.00", "8.00", "3.00", "12.00"),
    "gpt-4.1-mini-2025-04-14": ("0.40", "1.60", "0.80", "3.20"),
    "gpt-4.1-nano-2025-04-14": ("0.10", "0.40", "0.20", "0.80"),
}
PRICE_FIELDS = (
    "input_price_per_1m",
    "output_price_per_1m",
    "fine_tuned_input_price_per_1m",
    "fine_tuned_output_price_per_1m",
)


def base_model_prices_seed() -> int:
    """Fill the inference prices that are still unknown (empty or the old default 0); a price someone
    entered is never overwritten. (Migrations 0007 and 0009 keep frozen copies of this rule and its prices.)"""
    changed = 0
    for row in BaseModel.objects.filter(name__in=INFERENCE_PRICES):
        prices = dict(zip(PRICE_FIELDS, (Decimal(p) for p in INFERENCE_PRICES[row.name])))
        fields = [f for f, price in prices.items() if not getattr(row, f)]
        for f in fields:
            setattr(row, f, prices[f])
        if fields:
            row.save(update_fields=fields)
            changed += 1
    return changed


# Together AI's vision models (docs.together.ai/docs/fine-tuning/vision, "Supported models": LoRA on all,
# full fine-tuning on Qwen3-VL 8B/30B and Gemma 3). Together publishes no per-model training price in
# its documentation (docs/fine-tuning/pricing sends to together.ai/pricing, by size bracket): the price
# is left unknown (None), never $0, until a Manager enters it. Their tokenizers are not OpenAI's: the
# counts use o200k_base and 32-px patches as an approximation. No retirement dates are announced.
TOGETHER_SEED = [
    {"name": "Qwen/Qwen3-VL-8B-Instruct"},
    {"name": "Qwen/Qwen3-VL-30B-A3B-Instruct"},
    {"name": "google/gemma-3-4b-it-VLM"},
    {"name": "google/gemma-3-12b-it-VLM"},
    {"name": "google/gemma-3-27b-it-VLM"},
    {"name": "meta-llama/Llama-4-Scout-17B-16E-Instruct-VLM"},
]
TOGETHER_DEFAULTS = {
    "provider": ProviderName.TOGETHER,
    "training_price_per_1m": None,
    "encoding": "o200k_base",
    "image_tokens": BaseModel.ImageTokens.PATCHES,
    "patch_multiplier": 1.0,
    "supports_vision": True,
    "max_tokens_per_example": 32768,
}


def base_model_seed_rows() -> list[tuple[str, dict]]:
    """(name, defaults) of every reference base model, OpenAI's then Together's."""
    rows = []
    for spec in SEED:
        defaults = {
            "provider": ProviderName.OPENAI,
            "encoding": "o200k_base",
            "max_tokens_per_example": 65536,
            "jobs_end_date": OPENAI_JOBS_END,
            **spec,
        }
        rows.append((defaults.pop("name"), defaults))
    for spec in TOGETHER_SEED:
        defaults = {**TOGETHER_DEFAULTS, **spec}
        rows.append((defaults.pop("name"), defaults))
    return rows


def base_model_dates_seed() -> int:
    """Create the reference base models that are missing and fill the jobs-end and shutdown dates that are still
    empty; a date someone entered is never overwritten. (Migration 0009 keeps a frozen copy of this rule and its
    rows.)"""
    changed = 0
    for name, defaults in base_model_seed_rows():
        row, created = BaseModel.objects.get_or_create(name=name, defaults=defaults)
        fields = (
            []
            if created
            else [f for f in ("jobs_end_date", "shutdown_date") if defaults.get(f) and getattr(row, f) is None]
        )
        for f in fields:
            setattr(row, f, defaults[f])
        if fields:
            row.save(update_fields=fields)
        changed += created or bool(fields)
    return changed


def base_models_seed() -> list[BaseModel]:
    """Create the reference base models that do not exist yet; existing rows (admin edits) keep their values,
    only empty dates and prices are filled."""
    base_model_dates_seed()
    base_model_prices_seed()
    return list(BaseModel.objects.filter(name__in=[name for name, _ in base_model_seed_rows()]))


# --- lifecycle: the one rule ------------------------------------------------------------------


def lifecycle_today() -> datetime.date:
    """The date every lifecycle check uses: `settings.GESTIMA_TODAY` when set (a frozen date for demos and
    tests, "YYYY-MM-DD"), else today in the project's time zone. One clock, so two pages never disagree."""
    frozen = getattr(settings, "GESTIMA_TODAY", None)
    if frozen:
        return frozen if isinstance(frozen, datetime.date) else datetime.date.fromisoformat(str(frozen))
    return timezone.localdate()


@dataclass(frozen=True)
class Lifecycle:
    """The dates of one model: its own (a base model) or its base's (fine-tuned, checkpoint, Azure fine-tune)."""

    model_name: str
    base_name: str  # the base model the dates belong to ('' when the name names none we know)
    base_model: BaseModel | None
    derived: bool  # made from the base (fine-tuned or a checkpoint), so it inherits the base's shutdown
    checkpoint: bool = False

    @property
    def jobs_end_date(self) -> datetime.date | None:
        return self.base_model.jobs_end_date if self.base_model else None

    @property
    def shutdown_date(self) -> datetime.date | None:
        return self.base_model.shutdown_date if self.base_model else None

    def jobs_ended(self, today: datetime.date | None = None) -> bool:
        """No new fine-tuning jobs: the day after the jobs-end date ("no new jobs after")."""
        return self.jobs_end_date is not None and (today or lifecycle_today()) > self.jobs_end_date

    def is_shut_down(self, today: datetime.date | None = None) -> bool:
        """The model stops serving on its shutdown date."""
        return self.shutdown_date is not None and (today or lifecycle_today()) >= self.shutdown_date

    def days_to_shutdown(self, today: datetime.date | None = None) -> int | None:
        return None if self.shutdown_date is None else (self.shutdown_date - (today or lifecycle_today())).days

    def shuts_down_after(self, other: "Lifecycle") -> bool:
        """True when this model serves longer than `other`: a later shutdown date, or none while `other` has one."""
        if other.shutdown_date is None:
            return False
        return self.shutdown_date is None or self.shutdown_date > other.shutdown_date


def model_base_name(model_name: str) -> tuple[str, bool, bool]:
    """(base name, derived, checkpoint) of a model name as providers spell it:
    `ft:BASE:org:suffix:id` (fine-tuned), `ft:BASE:org:suffix:id:ckpt-step-N` (checkpoint),
    `BASE.ft-<hex>` (Azure OpenAI fine-tune), anything else is a base model's own name."""
    name = (model_name or "").strip()
    if name.startswith("ft:") and name.count(":") >= 2:
        return name.split(":")[1], True, ":ckpt-step-" in name
    if ".ft-" in name:
        return name.split(".ft-", 1)[0], True, False
    return name, False, False


def _base_model_row(name: str, base_models: dict[str, BaseModel] | None = None) -> BaseModel | None:
    if not name:
        return None
    if base_models is not None:  # a list page read every row at once (`base_models_by_name`)
        row = base_models.get(name)
        dated = [m for n, m in sorted(base_models.items()) if n.startswith(f"{name}-")][:2]
    else:
        row = BaseModel.objects.filter(name=name).first()
        dated = None if row is not None else list(BaseModel.objects.filter(name__startswith=f"{name}-")[:2])
    if row is None:
        # ft:gpt-4o-mini:... names an undated base: its one dated row (gpt-4o-mini-2024-07-18), if unambiguous.
        row = dated[0] if len(dated) == 1 else None
    return row


def base_models_by_name() -> dict[str, BaseModel]:
    """Every base model by name, in one query: pass it to `model_lifecycle` for each row of a list."""
    return {row.name: row for row in BaseModel.objects.all()}


def model_lifecycle(
    *, model_name: str, base_name: str = "", base_models: dict[str, BaseModel] | None = None
) -> Lifecycle:
    """The lifecycle of any model name: a base model, a fine-tuned model or checkpoint (`ft:BASE:...`), an
    Azure fine-tune (`BASE.ft-...`). `base_name` names the base when the caller knows it better than the name
    does (a registry version made by a training run, an Azure deployment with a name of its own). A list page
    passes `base_models` (`base_models_by_name()`) so its rows ask the database nothing more."""
    parsed, derived, checkpoint = model_base_name(model_name)
    if base_name and base_name != model_name:
        derived = derived or parsed != base_name
        parsed = base_name
    row = _base_model_row(parsed, base_models)
    return Lifecycle(
        model_name=model_name,
        base_name=row.name if row else parsed if derived else "",
        base_model=row,
        derived=derived,
        checkpoint=checkpoint,
    )


def base_model_lifecycle(base_model: BaseModel) -> Lifecycle:
    return Lifecycle(model_name=base_model.name, base_name=base_model.name, base_model=base_model, derived=False)


def lifecycle_warning(lifecycle: Lifecycle, *, today: datetime.date | None = None) -> str:
    """The one warning: no new fine-tuning jobs / the model stops serving on a date that is near or past
    (`settings.MODEL_LIFECYCLE_WARNING_DAYS`); '' otherwise. A fine-tuned model names the base it inherits from."""
    today = today or lifecycle_today()
    soon = settings.MODEL_LIFECYCLE_WARNING_DAYS
    notes = []
    dates = [("stops serving on", lifecycle.shutdown_date)]
    if not lifecycle.derived:  # a fine-tuned model is not fine-tuned again here; its base's jobs date is not its own
        dates.insert(0, ("no new fine-tuning jobs after", lifecycle.jobs_end_date))
    for label, date in dates:
        if date is None:
            continue
        days = (date - today).days
        if days < 0 or (label == "stops serving on" and days == 0):
            notes.append(f"{label} {date:%Y-%m-%d} (past)")
        elif days <= soon:
            notes.append(f"{label} {date:%Y-%m-%d} (in {days} days)")
    if notes and lifecycle.derived:
        notes[0] = f"fine-tuned from {lifecycle.base_name}, which {notes[0]}"
    return "; ".join(notes)


def base_model_date_warning(base_model: BaseModel, *, today: datetime.date | None = None) -> str:
    """The lifecycle warning of a base-model row (the base-model list, the launch page, the dataset command)."""
    return lifecycle_warning(base_model_lifecycle(base_model), today=today)
