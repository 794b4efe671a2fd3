"""Routing routes: ``POST /v1/resolve`` (a dry run of resolution) and ``GET /swarm/models``.

HTTP only: parse, ask the gateway, write JSON. Nothing here runs a model.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from local_lattice.api.dispatch import gateway_of
from local_lattice.api.payload import json_response, read_json, validate
from local_lattice.api.route_table import RouteSpec
from local_lattice.protocol.openai import ResolveRequest
from local_lattice.types import Endpoint, JSONObject

# The swarm layer's documented defaults (SWARM_CHAT_DEFAULT_MODELS, _STRATEGY, _AUTO_MAX), reported
# here as the original did; the swarm section of the config supersedes them once it exists.


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
    validate(ResolveRequest, body)
    endpoint = endpoint_of(body)
    routed = await gateway_of(request).route(
        endpoint, body.get("model"), body=body, headers=request.headers, dry_run=True
    )
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
            "hints": resolution.hints.as_json(),
            "reasons": list(resolution.notes),
            "explanation": resolution.explanation,
        },
        headers=headers,
    )


ROUTES = (
    RouteSpec("/v1/resolve", resolve_dry_run, ("POST",), "Which model a request would get, and why (runs nothing)",
              ResolveRequest, errors=(404,), tags=("routing",), watched=True),
)  # fmt: skip
