"""How far a training run has come, counted: files uploaded of those it sends, steps trained of its total.

The run page and its live JSON (finetune/admin/run_buttons.py `run_live`) and the dashboard show these figures
(the dashboard reads what they need for all its runs at once: finetune.selectors.runs_progress_facts); a figure that
cannot be known honestly (no total steps) comes back without a percentage, so the page draws no bar.
"""

from __future__ import annotations

import math
from django.utils import timezone

from curation.provider_names import ProviderName
from finetune.models import TrainingRun
from finetune.services.run_start import run_upload_splits
from gestima.progress import Progress

S = TrainingRun.Status


def _whole(value) -> int | None:
    """A positive whole number from a stored hyperparameter, or None ("auto", Together's "max", missing)."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return int(number) if number >= 1 and number == int(number) else None


def _reported_total_steps(run: TrainingRun):
    """The `total_steps` the provider reported last (OpenAI's metrics events carry it), or None."""
    facts = getattr(run, "progress_facts", None)
    if facts is not None:
        return facts.reported_total_steps
    event = run.events.filter(data__has_key="total_steps").order_by("-created_at_remote", "-id").first()
    return None if event is None else event.data.get("total_steps")


def _last_metric(run: TrainingRun):
    facts = getattr(run, "progress_facts", None)
    return facts.last_metric if facts is not None else run.metrics.order_by("-step").first()


def run_total_steps(run: TrainingRun) -> int | None:
    """The run's total training steps: what the provider reported last, else n_epochs × ceil(train examples /
    batch_size) from the values the provider resolved (or the numbers asked, when not "auto") and the dataset
    version's train count. None when unknown."""
    reported = _whole(_reported_total_steps(run))
    if reported:
        return reported
    resolved, asked = run.resolved_hyperparameters or {}, run.hyperparameters or {}
    epochs = _whole(resolved.get("n_epochs", asked.get("n_epochs")))
    batch = _whole(resolved.get("batch_size", asked.get("batch_size")))
    train = _whole((run.dataset_version.counts or {}).get("train"))
    if not (epochs and batch and train):
        return None
    return epochs * math.ceil(train / batch)


def run_upload_count(run: TrainingRun) -> Progress:
    """Files on the provider of those the run sends (train, and validation when the version has it). Each
    split's file id is stored the moment its upload ends (run_start._upload), so the count moves per file."""
    if run.provider == ProviderName.DRYRUN:
        return Progress("Writing the files (dry run: nothing is uploaded)", None)
    facts = getattr(run, "progress_facts", None)
    splits = run_upload_splits(run, has_validation=facts.has_validation if facts is not None else None)
    done = [split for split, field in splits if getattr(run, field)]
    pending = [split for split, field in splits if not getattr(run, field)]
    parts = [f"{split} done" for split in done] + [f"{split} pending" for split in pending]
    percent = 100 * len(done) // len(splits)
    return Progress(f"Uploading: {len(done)} / {len(splits)} files ({', '.join(parts)})", percent)


def run_step_count(run: TrainingRun) -> Progress:
    """Steps trained of the total, with the last train loss and the provider's finish estimate."""
    last = _last_metric(run)
    step = last.step if last else 0
    total = run_total_steps(run)
    if total is not None and step > total:
        total = None  # the computed total was wrong (the provider counted otherwise): no wrong figure
    loss = "" if last is None or last.train_loss is None else f", train loss {last.train_loss:.4g}"
    if run.status == S.SUCCEEDED:
        steps = total or step
        return Progress(f"finished: {steps} steps{loss}" if steps else "finished", 100)
    if total is None:
        text, percent = (f"step {step} (total unknown){loss}" if last else "no metrics yet"), None
    else:
        percent = 100 * step // total
        text = f"step {step} / {total} ({percent}%){loss}"
    if run.estimated_finish_at and not run.is_terminal:
        text += f"; estimated finish {timezone.localtime(run.estimated_finish_at):%Y-%m-%d %H:%M}"
    return Progress(text, percent)


def run_count(run: TrainingRun) -> Progress:
    """The run's progress: files while it uploads, steps after."""
    if run.status == S.UPLOADING:
        return run_upload_count(run)
    return run_step_count(run)
