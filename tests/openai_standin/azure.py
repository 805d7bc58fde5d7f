"""The stand-in behaving as Azure OpenAI, with a minimal Azure management (ARM) API for deployments.

`AzureStandIn.install(api, ft)` turns a StandIn that already has the fine-tuning routes into Azure:
- data plane only under `/openai/`, with the `api-key` header and an `api-version` query on every call;
- uploaded files are imported in the background (`pending`/`running`, then `processed`), and a job
  naming a file not yet imported is refused with 400 invalidPayload, as Azure does;
- fine-tuned models get Azure's names (`BASE.ft-<hex>`);
- chat only through a deployment: `POST /openai/deployments/{name}/chat/completions`; an unknown (or
  not yet provisioned) deployment answers 404 DeploymentNotFound;
- ARM: `PUT/GET /subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.CognitiveServices/accounts/
  {account}/deployments/{name}?api-version=...` with a bearer token; provisioningState goes Creating →
  Succeeded after `provision_reads` GETs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from tests.openai_standin.base import Request, Response, StandIn
from tests.openai_standin.chat import Reply, chat_completion
from tests.openai_standin.fine_tuning import FineTuningAPI

ARM = (
    "/subscriptions/(?P<sub>[^/]+)/resourceGroups/(?P<rg>[^/]+)/providers/Microsoft.CognitiveServices/"
    "accounts/(?P<account>[^/]+)/deployments/(?P<name>[^/]+)"
)
NOT_FOUND = (
    "The API deployment for this resource does not exist. If you created the deployment within the last "
    "5 minutes, please wait a moment and try again."
)


def azure_error(status: int, code: str, message: str) -> Response:
    """Azure's error body: code and message only (no type, no param)."""
    return Response(status, {"error": {"code": code, "message": message}})


@dataclass
class AzureStandIn:
    api_key: str = "azure-test-key"
    management_token: str = "arm-test-token"
    import_reads: int = 2
    provision_reads: int = 1
    # deployment name -> {"model", "state", "reads", "sku"}
    deployments: dict[str, dict] = field(default_factory=dict)
    answer: Callable[[dict], str | Reply | Response] = lambda body: "{}"
    ft: FineTuningAPI | None = None

    def install(self, api: StandIn, ft: FineTuningAPI) -> "AzureStandIn":
        self.ft = ft
        ft.import_reads = self.import_reads
        ft.refuse_unprocessed = True
        ft.model_name_style = "azure"
        api.guards.append(self.guard)
        api.route("POST", "/openai/deployments/(?P<deployment>[^/]+)/chat/completions")(self.chat)
        api.route("PUT", ARM)(self.deployment_put)
        api.route("GET", ARM)(self.deployment_get)
        api.azure = self
        return self

    def add_deployment(self, name: str, model: str) -> None:
        """A deployment made elsewhere (the portal), already serving."""
        self.deployments[name] = {
            "model": model,
            "state": "Succeeded",
            "reads": 0,
            "sku": {"name": "standard", "capacity": 1},
        }

    # --- every request -------------------------------------------------------------------------
    def guard(self, request: Request) -> Response | None:
        if request.path.startswith("/subscriptions/"):
            if request.headers.get("authorization") != f"Bearer {self.management_token}":
                return azure_error(
                    401,
                    "AuthenticationFailed",
                    "Authentication failed. The 'Authorization' header is missing or invalid.",
                )
            if not request.q("api-version"):
                return azure_error(
                    400,
                    "MissingApiVersionParameter",
                    "The api-version query parameter (?api-version=) is required for all requests.",
                )
            return None
        if not request.path.startswith("/openai/"):
            return azure_error(404, "404", "Resource not found")
        if request.headers.get("api-key") != self.api_key:
            return azure_error(
                401,
                "401",
                "Access denied due to invalid subscription key or wrong API endpoint. Make "
                "sure to provide a valid key for an active subscription and use a correct "
                "regional API endpoint for your resource.",
            )
        if not request.q("api-version"):
            return azure_error(404, "404", "Resource not found")
        return None

    # --- inference -----------------------------------------------------------------------------
    def chat(self, request: Request) -> Response:
        name = request.params["deployment"]
        deployment = self.deployments.get(name)
        if deployment is None or deployment["state"] != "Succeeded":
            return azure_error(404, "DeploymentNotFound", NOT_FOUND)
        body = request.json()
        result = self.answer(body)
        if isinstance(result, Response):
            return result
        reply = result if isinstance(result, Reply) else Reply(text=result)
        return Response(
            200,
            chat_completion(
                model=deployment["model"],
                text=reply.text,
                refusal=reply.refusal,
                prompt_tokens=reply.prompt_tokens,
                completion_tokens=reply.completion_tokens,
            ),
            delay=reply.delay,
        )

    # --- management (ARM) ----------------------------------------------------------------------
    def _resource(self, request: Request, deployment: dict) -> dict:
        p = request.params
        return {
            "id": (
                f"/subscriptions/{p['sub']}/resourceGroups/{p['rg']}/providers/Microsoft.CognitiveServices/"
                f"accounts/{p['account']}/deployments/{p['name']}"
            ),
            "name": p["name"],
            "type": "Microsoft.CognitiveServices/accounts/deployments",
            "sku": deployment["sku"],
            "properties": {
                "model": {"format": "OpenAI", "name": deployment["model"], "version": "1"},
                "provisioningState": deployment["state"],
            },
        }

    def deployment_put(self, request: Request) -> Response:
        body = request.json()
        model = (body.get("properties") or {}).get("model") or {}
        sku = body.get("sku") or {}
        if model.get("format") != "OpenAI" or not model.get("name") or not sku.get("name"):
            return azure_error(
                400,
                "InvalidResourceProperties",
                "The deployment needs sku.name and properties.model {format: OpenAI, name, version}.",
            )
        models = {j["fine_tuned_model"] for j in self.ft.jobs.values() if j.get("fine_tuned_model")}
        if model["name"] not in models:
            return azure_error(
                400,
                "DeploymentModelNotSupported",
                f"The model '{model['name']}' is not a fine-tuned model of this resource.",
            )
        existed = request.params["name"] in self.deployments
        self.deployments[request.params["name"]] = {
            "model": model["name"],
            "state": "Creating",
            "reads": self.provision_reads,
            "sku": sku,
        }
        return Response(200 if existed else 201, self._resource(request, self.deployments[request.params["name"]]))

    def deployment_get(self, request: Request) -> Response:
        deployment = self.deployments.get(request.params["name"])
        if deployment is None:
            return azure_error(404, "DeploymentNotFound", f"Deployment {request.params['name']} was not found.")
        if deployment["state"] == "Creating":
            deployment["reads"] -= 1
            if deployment["reads"] < 0:
                deployment["state"] = "Succeeded"
        return Response(200, self._resource(request, deployment))
