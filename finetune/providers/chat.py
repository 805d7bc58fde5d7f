"""Chat completions through the `openai` SDK (evaluation and estimates): a mixin for the OpenAI providers."""
from finetune.providers.base import ChatResult, ProviderError  # noqa: F401


class OpenAIChatMixin:
    """Implements Provider.chat with `self.client` (an `openai.OpenAI` or `openai.AzureOpenAI`)."""
