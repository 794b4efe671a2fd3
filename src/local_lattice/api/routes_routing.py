"""Routing routes: ``POST /v1/resolve`` (a dry run of resolution) and ``GET /swarm/models``.

HTTP only: parse, ask the gateway, write JSON. Nothing here runs a model.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from local_lattice.api.dispatch import gateway_of
from local_lattice.api.payload import json_response, read_json
from local_lattice.types import Endpoint, JSONObject

# The swarm layer's documented defaults (SWARM_CHAT_DEFAULT_MODELS, _STRATEGY, _AUTO_MAX), reported
# here as the original did; the swarm section of the config supersedes them once it exists.
SWARM_DEFAULTS: JSONObject = {
    "swarm_chat_enabled": True,
    "swarm_chat_default_models": ["auto"],
    "swarm_chat_default_strategy": "best-of-n",
    "swarm_chat_auto_max": 3,
}


def endpoint_of(body: JSONObject) -> Endpoint:
    """Which endpoint a dry-run body is shaped for (``endpoint`` may say so explicitly)."""
    named = body.get("endpoint")
    if named in ("chat", "completions", "embeddings"):
        return named  # type: ignore[no-any-return]
    if "input" in body and "messages" not in body:
        return "embeddings"
    return "completions" if "prompt" in body and "messages" not in body else "chat"


async def resolve_dry_run(request: Request) -> Response:
    """What a request with this body would run on, in order, and why; runs nothing."""
    body = await read_json(request)
    endpoint = endpoint_of(body)
    routed = await gateway_of(request).route(endpoint, body.get("model"), body=body, headers=request.headers)
    resolution = routed.resolution
    candidates = [{"id": m.id, "backend": m.backend, "loaded": m.loaded, "kind": m.kind} for m in resolution.candidates]
    headers = {"X-Model-Routed-To": routed.routed_to}
    if resolution.explanation:
        headers["X-Model-Resolution"] = resolution.explanation
    return json_response(
        {
            "object": "model.resolution",
            "requested": resolution.requested,
            "endpoint": endpoint,
            "model": routed.model.id,
            "backend": routed.model.backend,
            "routed_to": routed.routed_to,
            "candidates": candidates,
            "hints": resolution.hints,
            "reasons": list(resolution.notes),
            "explanation": resolution.explanation,
        },
        headers=headers,
    )


async def swarm_models(request: Request) -> Response:
    """The original's shape: models, loaded, roles, default, and the swarm defaults."""
    gateway = gateway_of(request)
    snapshot = await gateway.inventory.snapshot()
    chat = [m for m in snapshot.models if m.kind == "chat"]
    return json_response(
        {
            "models": list(dict.fromkeys(m.id for m in chat)),
            "loaded": list(dict.fromkeys(m.id for m in chat if m.loaded)),
            "roles": gateway.policy.roles.as_json(),
            "roles_source": gateway.policy.roles.source,
            "default_model": gateway.runtime_default or gateway.policy.default_model or None,
            "backends": {m.id: m.backend for m in chat},
            **SWARM_DEFAULTS,
        }
    )
