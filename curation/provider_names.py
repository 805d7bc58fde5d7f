"""The names of the providers that train or serve models, spelt one way everywhere (stored on base models, runs,
evaluations and estimates). No ORM: `finetune` and the format rules import it without the models.
"""

from django.db import models


class ProviderName(models.TextChoices):
    OPENAI = "openai", "OpenAI"
    AZURE = "azure", "Azure OpenAI"
    TOGETHER = "together", "Together AI"
    # An OpenAI-compatible server of our own (finetune's ModelEndpoint): evaluates and answers, never trains.
    COMPATIBLE = "compatible", "OpenAI-compatible endpoint"
    # No API call: files and manifest are written, nothing is sent (no key configured, or chosen on purpose).
    DRYRUN = "dryrun", "Dry run"
    # Trains instantly and answers from the ground truth with seeded noise: the demo's provider, never a real one
    # (finetune.providers.simulated; enabled by SIMULATED_PROVIDER, refused for tasks not marked demo).
    SIMULATED = "simulated", "Simulated (demo)"


def is_simulated_provider(provider: str) -> bool:
    """A stored provider name or tag (`simulated`, `simulated_ft` on estimates) of the simulated provider."""
    return (provider or "").split("_", 1)[0] == ProviderName.SIMULATED
