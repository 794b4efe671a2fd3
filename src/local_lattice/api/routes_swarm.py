"""Swarm routes: ``POST /swarm/vote``, ``/swarm/fanout``, ``/swarm/pipeline``, ``/swarm/debate``,
``GET /swarm/models``, and the chat meta-models (``swarmCouncil`` …) that ``/v1/chat/completions``
hands over. HTTP only: the route table and the meta-model names live here; the runs themselves, and
the swarm package with them, are imported from ``api/swarm_runs.py`` on the first swarm request.
In grab mode (one model serves everything) the ``/swarm/*`` runs answer 503, as the original's did."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from local_lattice import original_state
from local_lattice.api.dispatch import gateway_of
from local_lattice.api.payload import json_response
from local_lattice.api.route_table import UPSTREAM_ERRORS, RouteSpec
from local_lattice.api.sse import SSEResponse
from local_lattice.errors import BackendUnavailable
from local_lattice.protocol.swarm import DebateRequest, PipelineRequest, SwarmRequest
from local_lattice.types import JSONObject

# Chat meta-model names (matched case-insensitively) -> (intent, canonical name).
META_MODELS = {
    "swarmcouncil": ("council", "swarmCouncil"),
    "swarmvote": ("council", "swarmCouncil"),
    "swarm/vote": ("council", "swarmCouncil"),
    "swarmintelligence": ("council", "swarmCouncil"),
    "swarm/fanout": ("fanout", "swarm/fanout"),
    "swarm/pipeline": ("pipeline", "swarm/pipeline"),
}
DEPRECATED = {"swarmintelligence"}


def _refuse_in_grab_mode(request: Request) -> None:
    if gateway_of(request).config.engines.grab_model:
        refused = BackendUnavailable(
            "swarm routes are off in grab mode (MLX_GRAB_MODEL: one model serves every request); "
            "unset MLX_GRAB_MODEL, or start with --no-grab, to use /swarm/*",
            code="swarm_disabled_in_grab_mode",
        )
        del refused.headers["Retry-After"]  # no wait makes it available: it is how the gateway was started
        raise refused


async def vote(request: Request) -> Response | SSEResponse:
    from local_lattice.api import swarm_runs

    _refuse_in_grab_mode(request)
    return await swarm_runs.vote(request)


async def fanout(request: Request) -> Response | SSEResponse:
    from local_lattice.api import swarm_runs

    _refuse_in_grab_mode(request)
    return await swarm_runs.fanout(request)


async def pipeline(request: Request) -> Response | SSEResponse:
    from local_lattice.api import swarm_runs

    _refuse_in_grab_mode(request)
    return await swarm_runs.pipeline(request)


async def debate(request: Request) -> Response | SSEResponse:
    from local_lattice.api import swarm_runs

    _refuse_in_grab_mode(request)
    return await swarm_runs.debate(request)


async def swarm_models(request: Request) -> Response:
    """The original's shape: models, loaded, roles, default, the swarm defaults and its settings
    (``max_parallel``, ``max_concurrent_models``, ``anthropic_*``, ``swarm_chat_*``)."""
    gateway = gateway_of(request)
    snapshot = await gateway.inventory.snapshot()
    settings = gateway.config.swarm
    chat = [m for m in snapshot.models if m.kind == "chat"]
    return json_response(
        {
            "models": list(dict.fromkeys(m.id for m in chat)),
            "loaded": list(dict.fromkeys(m.id for m in chat if m.loaded)),
            "roles": gateway.policy.roles.as_json(),
            "roles_source": gateway.policy.roles.source,
            "default_model": gateway.runtime_default or gateway.policy.default_model or None,
            "backends": {m.id: m.backend for m in chat},
            "default": settings.chat_default_models,
            "swarm": settings.model_dump(),
            "meta_models": sorted({canonical for _, canonical in META_MODELS.values()} | {"swarmVote", "swarm/vote"}),
            **original_state.swarm_models_fields(gateway),
        }
    )


def is_swarm_model(model: Any) -> bool:
    return isinstance(model, str) and model.strip().lower() in META_MODELS


async def chat(request: Request, body: JSONObject) -> Response | SSEResponse:
    """A chat request whose ``model`` is a swarm meta-model; options come from ``body.swarm``."""
    from local_lattice.api import swarm_runs

    return await swarm_runs.chat(request, body)


_SWARM_ERRORS = (400, *UPSTREAM_ERRORS, 504)
ROUTES = (
    RouteSpec("/swarm/models", swarm_models, summary="Models, roles and swarm settings", tags=("swarm",)),
    RouteSpec("/swarm/vote", vote, ("POST",), "Fanout, then a judge picks the best answer", SwarmRequest, streams=True,
              generates=True, errors=_SWARM_ERRORS, tags=("swarm",)),
    RouteSpec("/swarm/fanout", fanout, ("POST",), "The same prompt to several models in parallel", SwarmRequest,
              streams=True,
              generates=True, errors=_SWARM_ERRORS, tags=("swarm",)),
    RouteSpec("/swarm/pipeline", pipeline, ("POST",), "Sequential steps with {{name}} templates", PipelineRequest,
              streams=True,
              generates=True, errors=_SWARM_ERRORS, tags=("swarm",)),
    RouteSpec("/swarm/debate", debate, ("POST",), "Rounds of debate, then a judge synthesizes", DebateRequest,
              streams=True,
              generates=True, errors=_SWARM_ERRORS, tags=("swarm",)),
)  # fmt: skip
