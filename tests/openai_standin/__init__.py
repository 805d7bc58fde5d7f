"""A local stand-in for the OpenAI HTTP API: the real `openai` SDK talks to it through OPENAI_BASE_URL."""

from tests.openai_standin.base import Request, Response, StandIn  # noqa: F401
