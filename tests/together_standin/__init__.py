"""A local stand-in for Together AI's HTTP API: the real `together` SDK talks to it through TOGETHER_BASE_URL."""

from tests.together_standin.api import TogetherAPI, TogetherStandIn  # noqa: F401
