"""Base models one can fine-tune: seeded from the reference's prices and dates, then edited as data."""
from __future__ import annotations

import datetime
from decimal import Decimal

from curation.models import BaseModel

# No new OpenAI fine-tuning jobs for anyone after this date (reference: platform status).
OPENAI_JOBS_END = datetime.date(2027, 1, 6)

SEED = [
    {"name": "gpt-4.1-2025-04-14", "training_price_per_1m": Decimal("25.00"), "image_tokens": BaseModel.ImageTokens.TILES},
    {"name": "gpt-4.1-mini-2025-04-14", "training_price_per_1m": Decimal("5.00"),
     "image_tokens": BaseModel.ImageTokens.PATCHES, "patch_multiplier": 1.62},
    {"name": "gpt-4.1-nano-2025-04-14", "training_price_per_1m": Decimal("1.50"),
     "image_tokens": BaseModel.ImageTokens.PATCHES, "patch_multiplier": 2.46},
    {"name": "gpt-4o-2024-08-06", "training_price_per_1m": Decimal("25.00"), "image_tokens": BaseModel.ImageTokens.TILES,
     "shutdown_date": datetime.date(2027, 1, 14)},
    # gpt-4o-mini fine-tuning is text-only; its image tokens (if ever used) follow the mini tile scheme.
    {"name": "gpt-4o-mini-2024-07-18", "training_price_per_1m": Decimal("3.00"),
     "image_tokens": BaseModel.ImageTokens.TILES_MINI, "supports_vision": False},
]

# Inference prices, USD per 1M tokens (reference: "Tokens and cost", standard tier): input, output for the
# base model, then input, output for models fine-tuned from it. Seeded by a data migration, edited as data.
INFERENCE_PRICES = {
    "gpt-4o-2024-08-06": ("2.50", "10.00", "3.75", "15.00"),
    "gpt-4o-mini-2024-07-18": ("0.15", "0.60", "0.30", "1.20"),
    "gpt-4.1-2025-04-14": ("2.00", "8.00", "3.00", "12.00"),
    "gpt-4.1-mini-2025-04-14": ("0.40", "1.60", "0.80", "3.20"),
    "gpt-4.1-nano-2025-04-14": ("0.10", "0.40", "0.20", "0.80"),
}
PRICE_FIELDS = ("input_price_per_1m", "output_price_per_1m", "fine_tuned_input_price_per_1m",
                "fine_tuned_output_price_per_1m")


def base_model_prices_seed(model_class=BaseModel) -> int:
    """Fill the inference prices that are still unknown (empty or the old default 0); a price someone
    entered is never overwritten. `model_class` lets the data migration pass its historical model."""
    changed = 0
    for row in model_class.objects.filter(name__in=INFERENCE_PRICES):
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
TOGETHER_DEFAULTS = {"provider": "together", "training_price_per_1m": None, "encoding": "o200k_base",
                     "image_tokens": BaseModel.ImageTokens.PATCHES, "patch_multiplier": 1.0, "supports_vision": True,
                     "max_tokens_per_example": 32768}


def base_model_seed_rows() -> list[tuple[str, dict]]:
    """(name, defaults) of every reference base model, OpenAI's then Together's."""
    rows = []
    for spec in SEED:
        defaults = {"provider": "openai", "encoding": "o200k_base", "max_tokens_per_example": 65536,
                    "jobs_end_date": OPENAI_JOBS_END, **spec}
        rows.append((defaults.pop("name"), defaults))
    for spec in TOGETHER_SEED:
        defaults = {**TOGETHER_DEFAULTS, **spec}
        rows.append((defaults.pop("name"), defaults))
    return rows


def base_models_seed() -> list[BaseModel]:
    """Create the reference base models that do not exist yet; existing rows (admin edits) are left alone."""
    rows = []
    for name, defaults in base_model_seed_rows():
        row, _ = BaseModel.objects.get_or_create(name=name, defaults=defaults)
        rows.append(row)
    base_model_prices_seed()
    return rows


def base_model_date_warning(base_model: BaseModel, *, today: datetime.date | None = None, soon_days: int = 90) -> str:
    """A warning when no new jobs can be made soon (or any more), or the model stops serving; '' otherwise."""
    today = today or datetime.date.today()
    notes = []
    for label, date in (("no new fine-tuning jobs after", base_model.jobs_end_date),
                        ("stops serving on", base_model.shutdown_date)):
        if date is None:
            continue
        if date < today:
            notes.append(f"{label} {date:%Y-%m-%d} (past)")
        elif (date - today).days <= soon_days:
            notes.append(f"{label} {date:%Y-%m-%d} (in {(date - today).days} days)")
    return "; ".join(notes)
