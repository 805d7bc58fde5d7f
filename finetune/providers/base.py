"""The provider adapter: what the rest of the project may ask of a fine-tuning/inference provider.

Implementations: `openai.py` (OpenAI and Azure OpenAI through the `openai` SDK), `together.py` (Together
AI through the `together` SDK), `dryrun.py` (writes files, calls nothing) and `simulated.py` (the demo: trains
instantly, answers from the ground truth). Fine-tuning methods are implemented with the training-run code; the
chat method (evaluation, estimates) comes from `chat.py`'s mixin, which reads `self.client`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from curation.provider_names import ProviderName


class ProviderError(Exception):
    """A provider call failed. `retryable` says whether trying again later may succeed."""

    def __init__(
        self,
        message: str,
        *,
        code: str = "",
        param: str = "",
        retryable: bool = False,
        retry_after: float | None = None,
    ):
        super().__init__(message)
        self.message = message
        self.code = code
        self.param = param
        self.retryable = retryable
        self.retry_after = retry_after


@dataclass
class ChatResult:
    """One chat completion: the raw text, usage and timing, or a refusal."""

    text: str
    input_tokens: int = 0
    output_tokens: int = 0
    latency_ms: int = 0
    refusal: str = ""
    raw: dict[str, Any] = field(default_factory=dict)


class Provider:
    """Base class; subclasses set `name` and implement what they support."""

    name = "base"
    calls_api = True
    # False where the provider has no "auto" epoch count: runs are then given their dataset's epochs.
    auto_epochs = True
    # The BaseModel.provider values this provider can train (None: any, e.g. the dry run).
    trains_models_of: frozenset[str] | None = None

    @classmethod
    def is_configured(cls) -> bool:
        """Whether the settings this provider needs are present (the launch form offers only these)."""
        return True

    def options_check(self, options: dict) -> dict:
        """Settings only this provider has (TrainingRun.provider_options), checked and completed."""
        if options:
            raise ProviderError(
                f"the {self.name} provider takes no provider options (got {', '.join(sorted(options))})",
                code="invalid_request",
            )
        return {}

    def validation_passes(self, *, options: dict, has_validation: bool) -> int:
        """Passes over the validation file the provider bills for a job: OpenAI bills none."""
        return 0

    # True where a fine-tuned model answers only through a named deployment (Azure): evals and estimates then
    # call the deployment name, not the model id.
    needs_deployment = False

    def account(self) -> str:
        """A fingerprint of the account files and jobs live in ('' for a provider that keeps nothing)."""
        return ""

    def file_exists(self, file_id: str) -> bool:
        """Whether the provider still holds an uploaded file (a provider that keeps nothing holds all)."""
        return True

    # --- inference (evaluation, estimates) -------------------------------------------------
    def chat(
        self,
        *,
        model: str,
        messages: list[dict],
        json_output: bool = True,
        temperature: float = 0.0,
        timeout: float = 120.0,
    ) -> ChatResult:
        raise ProviderError(f"the {self.name} provider cannot run models", code="unsupported")


_REGISTRY: dict[str, type[Provider]] = {}


def register(cls: type[Provider]) -> type[Provider]:
    _REGISTRY[cls.name] = cls
    return cls


def available_providers() -> list[str]:
    _load_all()
    return sorted(_REGISTRY)


def configured_providers() -> list[str]:
    """The providers whose settings are present (Together only with TOGETHER_API_KEY)."""
    _load_all()
    return sorted(name for name, cls in _REGISTRY.items() if cls.is_configured())


def provider_class(name: str) -> type[Provider] | None:
    _load_all()
    return _REGISTRY.get(name)


def default_provider_name() -> str:
    """The configured provider: OpenAI when a key is configured, then Azure OpenAI, then Together, then the
    simulated provider when SIMULATED_PROVIDER is on (the demo); dry-run otherwise. (Which provider serves a given
    model: finetune.selectors.provider_for_model.)"""
    from django.conf import settings

    if settings.OPENAI_API_KEY:
        return ProviderName.OPENAI
    if settings.AZURE_OPENAI_API_KEY and settings.AZURE_OPENAI_ENDPOINT:
        return ProviderName.AZURE
    if getattr(settings, "TOGETHER_API_KEY", ""):
        return ProviderName.TOGETHER
    if getattr(settings, "SIMULATED_PROVIDER", False):
        # Only without any real key: a real install never trains or answers with the simulation by default.
        return ProviderName.SIMULATED
    return ProviderName.DRYRUN


def get_provider(name: str | None = None) -> Provider:
    _load_all()
    name = name or default_provider_name()
    try:
        return _REGISTRY[name]()
    except KeyError:
        raise ProviderError(
            f"unknown provider {name!r}; known: {', '.join(sorted(_REGISTRY))}", code="unknown_provider"
        )


def _load_all() -> None:
    # Importing the modules registers their classes.
    import importlib

    for module in (
        "finetune.providers.openai",
        "finetune.providers.together",
        "finetune.providers.dryrun",
        "finetune.providers.compatible",
        "finetune.providers.simulated",
    ):
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name != module:
                raise
