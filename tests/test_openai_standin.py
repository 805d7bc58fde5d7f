"""The stand-in answers the real SDK over HTTP, including scripted errors the SDK retries."""

import openai

from tests.openai_standin import StandIn
from tests.openai_standin.base import api_error


def test_sdk_talks_to_the_standin_and_retries_scripted_errors():
    with StandIn() as api:
        api.route("GET", "/models/(?P<model>[^/]+)")(
            lambda r: {"id": r.params["model"], "object": "model", "created": 0, "owned_by": "standin"}
        )
        api.script("GET", "/models/.*", api_error(500, "boom", type_="server_error"))
        client = openai.OpenAI(api_key="test-key", base_url=api.base_url, max_retries=2)
        model = client.with_options(timeout=5).models.retrieve("gpt-4o-2024-08-06")
        assert model.id == "gpt-4o-2024-08-06"
        assert len(api.calls_to("GET", "/models/.*")) == 2  # one 500, one success
