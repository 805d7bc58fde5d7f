"""What training on a dataset version would cost as the dataset grows: this size, twice and five times it,
per base model and provider, at today's prices.

Every figure comes from the one cost function, `dataset_version_training_cost`, with its token counts scaled
(`scale=`), never counted again: the projection at ×1 is the figure the launch confirmation and the budget guard
show.
"""

from __future__ import annotations

from dataclasses import dataclass

from curation.models import BaseModel, DatasetVersion
from curation.services.dataset_costs import TrainingCost, dataset_version_training_cost

PROJECTION_SCALES = (1, 2, 5)


@dataclass(frozen=True)
class CostProjection:
    base_model: BaseModel
    costs: list[TrainingCost]  # one per scale, in the order of the scales asked for


def dataset_version_cost_projection(
    *, version: DatasetVersion, scales: tuple[int, ...] = PROJECTION_SCALES
) -> list[CostProjection]:
    """Per active base model (by provider, then name): its training cost on the version at each scale."""
    return [
        CostProjection(
            base_model=model,
            costs=[dataset_version_training_cost(version=version, base_model=model, scale=scale) for scale in scales],
        )
        for model in BaseModel.objects.filter(active=True).order_by("provider", "name")
    ]
