"""Provider adapters: the only code that talks to OpenAI or Azure OpenAI. See base.py for the contract."""
from finetune.providers.base import Provider, ProviderError, get_provider  # noqa: F401
