"""Provider adapters: the only code that talks to OpenAI, Azure OpenAI or Together. See base.py for the contract."""

from finetune.providers.base import Provider, ProviderError, get_provider  # noqa: F401
