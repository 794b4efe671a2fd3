"""The app factory: routes, the front door, CORS, exception rendering and the lifespan that builds
the gateway state. Nothing imports this module but the CLI and tests."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from local_lattice.api import payload, routes_anthropic, routes_observability, routes_responses, routes_routing
from local_lattice.api import routes_openai as r
from local_lattice.api import routes_swarm as swarm
from local_lattice.api.middleware import FrontDoor
from local_lattice.backends.base import Backend
from local_lattice.config import Config
from local_lattice.dashboard import routes as dashboard
from local_lattice.errors import LatticeError, NotFound
from local_lattice.gateway import Gateway

log = logging.getLogger("lattice.api")


def _observe_failure(request: Request, status: int, kind: str) -> None:
    gateway = getattr(request.app.state, "gateway", None)
    if gateway is not None:
        gateway.observer.fail(request.scope.get("state", {}), status, kind, request.url.path)


async def render_lattice_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, LatticeError)
    _observe_failure(request, exc.status, exc.code or exc.type)
    return payload.json_response(exc.envelope(), status=exc.status, headers=exc.headers)


async def render_http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 404:
        error: LatticeError = NotFound(f"no route {request.method} {request.url.path}")
    else:
        error = LatticeError(str(exc.detail), code=f"http_{exc.status_code}")
        error.status = exc.status_code
        error.type = "invalid_request_error" if exc.status_code < 500 else "internal_error"
    _observe_failure(request, error.status, error.code or error.type)
    return payload.json_response(error.envelope(), status=error.status, headers=dict(exc.headers or {}))


async def render_unexpected(request: Request, exc: Exception) -> Response:
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    error = LatticeError(f"internal error ({type(exc).__name__}); the gateway keeps running")
    _observe_failure(request, 500, "internal_error")
    return payload.json_response(error.envelope(), status=500)


def routes(config: Config | None = None) -> list[Route]:
    extra = dashboard.routes() if config is None or config.dashboard.enabled else []
    return [
        *extra,
        Route("/metrics", routes_observability.metrics, methods=["GET"]),
        Route("/healthz", r.healthz, methods=["GET"]),
        Route("/v1/models", r.list_models, methods=["GET"]),
        Route("/v1/chat/completions", r.chat_completions, methods=["POST"]),
        Route("/v1/completions", r.completions, methods=["POST"]),
        Route("/v1/embeddings", r.embeddings, methods=["POST"]),
        Route("/v1/responses", routes_responses.create_response, methods=["POST"]),
        Route("/v1/resolve", routes_routing.resolve_dry_run, methods=["POST"]),
        Route("/v1/messages", routes_anthropic.messages, methods=["POST"]),
        Route("/swarm/models", swarm.swarm_models, methods=["GET"]),
        Route("/swarm/vote", swarm.vote, methods=["POST"]),
        Route("/swarm/fanout", swarm.fanout, methods=["POST"]),
        Route("/swarm/pipeline", swarm.pipeline, methods=["POST"]),
        Route("/swarm/debate", swarm.debate, methods=["POST"]),
    ]


def create_app(
    config: Config,
    backends: Mapping[str, Backend] | None = None,
    on_ready: Callable[[Gateway], Awaitable[None]] | None = None,
) -> Starlette:
    """The ASGI app. ``backends`` replaces those built from ``config`` (tests inject fakes);
    ``on_ready`` runs once the gateway is built, before the first request (the CLI's banner)."""

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        gateway = Gateway(config, backends) if backends is not None else Gateway.from_config(config)
        app.state.gateway = gateway
        try:
            if on_ready is not None:
                await on_ready(gateway)
            yield
        finally:
            await gateway.aclose()

    server = config.server
    middleware = [
        Middleware(
            FrontDoor,
            api_keys=[k.get_secret_value() for k in server.api_keys],
            max_request_bytes=server.max_request_bytes,
            public_prefixes=(dashboard.PUBLIC_PREFIX, *(("/metrics",) if config.observability.metrics_public else ())),
            protected_prefixes=(dashboard.PROTECTED_PREFIX,),
            prefix_headers=((dashboard.PREFIX, ((b"content-security-policy", dashboard.CSP.encode()),)),),
        )
    ]
    if server.cors_origins:
        wildcard = "*" in server.cors_origins
        middleware.insert(
            0,
            Middleware(
                CORSMiddleware,
                allow_origins=server.cors_origins,
                allow_methods=["GET", "POST", "DELETE", "OPTIONS"],
                allow_headers=["Authorization", "X-API-Key", "Content-Type", "X-Request-Id", "anthropic-version"],
                allow_credentials=not wildcard,
                expose_headers=["X-Request-Id", "X-Model-Routed-To", "X-Model-Resolution"],
            ),
        )
    return Starlette(
        routes=routes(config),
        middleware=middleware,
        exception_handlers={
            LatticeError: render_lattice_error,
            HTTPException: render_http_error,
            Exception: render_unexpected,
        },
        lifespan=lifespan,
    )
