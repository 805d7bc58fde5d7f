"""The allowed range of each fine-tuning hyperparameter and the check of one value ("auto" or a number in range).

The run form checks a value here before anything is saved, so a bad value is a form error next to its field.
"""

from __future__ import annotations

from finetune.models import TrainingRun

# name -> (type, low, high); learning_rate_multiplier must also be above 0.
HYPERPARAMETER_LIMITS = {
    "n_epochs": (int, 1, 50),
    "batch_size": (int, 1, 256),
    "learning_rate_multiplier": (float, 0, 1000),
}


class HyperparameterInvalid(ValueError):
    """A value that is neither "auto" nor a number in its range; the message says which range."""


def hyperparameter_check(*, name: str, value) -> str:
    """The value as the run stores it: "auto" for empty, else the number as text; refused when out of range."""
    kind, low, high = HYPERPARAMETER_LIMITS[name]
    if value in (None, "", TrainingRun.AUTO):
        return TrainingRun.AUTO
    try:
        number = kind(value)
    except (TypeError, ValueError):
        raise HyperparameterInvalid(f'{name} must be a number or "auto", not {value!r}.')
    if not (low <= number <= high) or (kind is float and number <= 0):
        raise HyperparameterInvalid(f'{name} must be between {low} and {high} (or "auto"), not {value!r}.')
    return str(number)
