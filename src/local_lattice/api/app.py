"""The app factory: the route table, the front door and guard, exception rendering and the lifespan
that builds the gateway state. Nothing imports this module but the CLI and tests."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from local_lattice.api import (
    openapi,
    payload,
    routes_anthropic,
    routes_models,
    routes_observability,
    routes_responses,
    routes_routing,
    routes_swarm,
)
from local_lattice.api import routes_dashboard as dashboard
from local_lattice.api import routes_openai as r
from local_lattice.api.guard import Guard
from local_lattice.api.lifeline import Lifeline, deadline_error
from local_lattice.api.middleware import FrontDoor
from local_lattice.api.route_table import RouteSpec, generating_paths, public_paths
from local_lattice.api.sse import SSEResponse
from local_lattice.backends.base import Backend
from local_lattice.config import Config
from local_lattice.errors import ClientClosedRequest, LatticeError, NotFound
from local_lattice.gateway import Gateway
from local_lattice.routing.serving import serving_config
from local_lattice.security.cors import CorsPolicy
from local_lattice.security.keys import KeyRing
from local_lattice.security.limits import Limiter
from local_lattice.security.redact import Redactor
from local_lattice.types import LoadProgress

if TYPE_CHECKING:
    from local_lattice.preferences import Preferences
    from local_lattice.state.caps import SharedCaps
    from local_lattice.state.limits import SharedLimiter
    from local_lattice.state.store import Store
    from local_lattice.state.views import SharedViews

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


class Handled:
    """A route's endpoint as an ASGI app with a lifeline (``api/lifeline.py``): what the guard calls
    for a generating route instead of going through the router, and the router for a watched one.
    It renders the endpoint's failures as the app's exception handlers do (in the route's own error
    shape), and an early end as its answer: nothing for a client that left (recorded as 499),
    ``504 deadline_exceeded`` or ``503 server_shutting_down`` otherwise. Past the request's
    deadline, any failure is answered as the deadline's."""

    __slots__ = ("endpoint", "error_body", "read_body")

    def __init__(self, spec: RouteSpec) -> None:
        self.endpoint = spec.endpoint
        self.error_body = spec.error_body
        # The guard reads generating bodies first; other bodies are read before the lifeline is
        # armed, so its watcher (under a server without the hook) cannot take them.
        self.read_body = not spec.generates

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive, send)
        if self.read_body:
            await request.body()
        life = Lifeline.arm(scope, receive)
        try:
            response = await self._respond(request, life)
            if response is None:
                return
            if not isinstance(response, SSEResponse):
                life.disarm()  # the answer is made: a client leaving now changes nothing
            await response(scope, receive, send)
        finally:
            life.disarm()

    async def _respond(self, request: Request, life: Lifeline) -> Response | SSEResponse | None:
        try:
            response: Response | SSEResponse = await self.endpoint(request)
        except asyncio.CancelledError:
            if life.ending is None:
                raise
            return self._ended(request, life.settle())
        except LatticeError as exc:
            return self._error(request, deadline_error() if life.overdue() else exc)
        except Exception as exc:
            return await render_unexpected(request, exc)
        if life.ending is not None:  # the cancellation was swallowed on the way: the ending stands
            return self._ended(request, life.settle())
        return response

    def _ended(self, request: Request, ending: LatticeError) -> Response | None:
        if isinstance(ending, ClientClosedRequest):
            _observe_failure(request, ending.status, ending.code or ending.type)
            return None  # nobody is there to read an answer
        return self._error(request, ending)

    def _error(self, request: Request, exc: LatticeError) -> Response:
        _observe_failure(request, exc.status, exc.code or exc.type)
        body = exc.envelope() if self.error_body is None else self.error_body(exc)
        return payload.json_response(body, status=exc.status, headers=exc.headers)


class GatewayApp(Starlette):
    """Starlette with the front door and the guard outside its own layers: a request the guard
    serves directly (a generating route) never enters Starlette's error middleware or router."""

    def __init__(self, *, outer: list[Middleware], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.outer = outer

    def build_middleware_stack(self) -> ASGIApp:
        app = super().build_middleware_stack()
        for cls, args, kwargs in reversed(self.outer):
            app = cls(app, *args, **kwargs)
        return app


def route_specs(config: Config) -> list[RouteSpec]:
    """Every route's spec: each ``routes_*`` module contributes its ``ROUTES`` table."""
    return [
        *r.ROUTES,
        *routes_models.ROUTES,
        *routes_responses.ROUTES,
        *routes_anthropic.ROUTES,
        *routes_routing.ROUTES,
        *routes_swarm.ROUTES,
        *routes_observability.routes(public=config.observability.metrics_public),
        *(dashboard.route_specs() if config.dashboard.enabled else ()),
        *openapi.ROUTES,
    ]


def routes(config: Config) -> list[Route]:
    return [spec.route(Handled(spec) if spec.lifeline else None) for spec in route_specs(config)]


def redactor_for(config: Config) -> Redactor:
    """Masks this deployment's client keys and backends' keys (and key-shaped text) in logs."""
    secrets = [key for _, key in config.server.named_keys()]
    secrets.extend(b.api_key.get_secret_value() for b in config.backends if b.api_key is not None)
    return Redactor(secrets)


def store_for(config: Config) -> Store | None:
    """The shared store replicas keep their limits and caps in, when a state URL is set."""
    if config.state.url is None:
        return None
    from local_lattice.state.store import Store

    return Store(config.state)


def limiter_for(config: Config, store: Store | None) -> Limiter | SharedLimiter:
    """Rate limits counted in this process, or across replicas when a store is set."""
    limits = config.limits
    limiter = Limiter(limits.per_key, limits.per_ip, limits.keys, limits.max_tracked_clients)
    if store is None or not limiter.enabled:
        return limiter
    from local_lattice.state.limits import SharedLimiter

    return SharedLimiter(limits, store)


def _share(gateway: Gateway, store: Store) -> tuple[SharedCaps, SharedViews]:
    """Count the gateway's caps across replicas in ``store``, share cool-downs and preferences, and
    show the store's state."""
    from local_lattice.state.caps import CapPlan, SharedCaps
    from local_lattice.state.views import SharedViews

    caps = SharedCaps(CapPlan.of(gateway.config), store, gateway.config.state.lease_seconds)
    gateway.admission.shared = caps
    views = SharedViews(store, gateway.tracker, lambda: gateway.preferences, _taker(gateway))
    gateway.on_preferences = views.publish_preferences
    gateway.observer.metrics.watch_state(lambda: store.degraded)
    gateway.shared_state = lambda: {**store.health(), **caps.health()}
    store.start()
    caps.start()
    return caps, views


def _taker(gateway: Gateway) -> Callable[[Preferences], None]:
    def take(preferences: Preferences) -> None:
        gateway.preferences = preferences  # from another replica: not announced again

    return take


def _middleware(config: Config, specs: list[RouteSpec], limiter: Limiter | SharedLimiter) -> list[Middleware]:
    server, limits = config.server, config.limits
    public = public_paths(specs)
    cors = CorsPolicy(server.cors_origins, server.cors_allow_credentials) if server.cors_origins else None
    page_headers = ((dashboard.PREFIX, ((b"content-security-policy", dashboard.CSP.encode()),)),)
    return [
        Middleware(
            FrontDoor,
            keys=KeyRing(server.named_keys()),
            max_request_bytes=server.max_request_bytes,
            public_paths=public,
            prefix_headers=page_headers,
            cors=cors,
        ),
        Middleware(
            Guard,
            limits=limits,
            limiter=limiter,
            generating_paths=generating_paths(specs),
            public_paths=public,
            direct={spec.path: Handled(spec) for spec in specs if spec.generates},
        ),
    ]


def create_app(
    config: Config,
    backends: Mapping[str, Backend] | None = None,
    on_ready: Callable[[Gateway], Awaitable[None]] | None = None,
    progress: LoadProgress | None = None,
) -> GatewayApp:
    """The ASGI app. ``backends`` replaces those built from ``config`` (tests inject fakes);
    ``progress`` is told of models preloaded at start; ``on_ready`` runs once the gateway is built,
    before the first request (the CLI's banner)."""

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        gateway = (
            Gateway(config, backends) if backends is not None else Gateway.from_config(await serving_config(config))
        )
        app.state.gateway = gateway
        shared = None if store is None else _share(gateway, store)
        await gateway.start(progress)
        try:
            if on_ready is not None:
                await on_ready(gateway)
            yield
        finally:
            await gateway.aclose()
            if shared is not None:
                for part in shared:
                    await part.aclose()
            if store is not None:
                await store.aclose()

    specs = route_specs(config)
    store = store_for(config)
    limiter = limiter_for(config, store)
    app = GatewayApp(
        outer=_middleware(config, specs, limiter),
        routes=[spec.route(Handled(spec) if spec.lifeline else None) for spec in specs],
        exception_handlers={
            LatticeError: render_lattice_error,
            HTTPException: render_http_error,
            Exception: render_unexpected,
        },
        lifespan=lifespan,
    )
    # No redirects to the slash-less or slashed twin of a path: Starlette builds them from the Host
    # header the client sent, and the gateway never sends a client to a host it named itself.
    app.router.redirect_slashes = False
    app.state.openapi = openapi.OpenAPIDocument(specs, config.limits)
    app.state.redactor = redactor_for(config)
    return app
