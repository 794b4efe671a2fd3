"""The route table: one ``RouteSpec`` per HTTP route, contributed by each ``api/routes_*.py`` module.

A spec carries what the machinery around the handler needs, so a new route joins by adding one
entry: the Starlette ``Route`` is built from it, the front door takes the public paths from it, the
guard applies body limits and token accounting to ``generates`` routes, and the OpenAPI document
is generated from its models. Routes not described here still work and are still protected (the
front door denies by default); the OpenAPI coverage test names them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel
from starlette.routing import Route

# Statuses every route may answer, and every authenticated route, besides its own.
ANY_ERRORS = (431,)
AUTH_ERRORS = (401, 429)
BODY_ERRORS = (400, 413)
UPSTREAM_ERRORS = (404, 502, 503)


@dataclass(frozen=True, slots=True)
class RouteSpec:
    path: str
    endpoint: Callable[..., Any]
    methods: tuple[str, ...] = ("GET",)
    summary: str = ""
    request_model: type[BaseModel] | None = None
    response_model: type[BaseModel] | None = None
    streams: bool = False  # may answer text/event-stream when the body sets "stream": true
    public: bool = False  # no API key needed, no rate limits
    generates: bool = False  # body limits apply and tokens are charged to rate limits
    watched: bool = False  # no model runs, but a client leaving still ends it (generating routes always are)
    errors: tuple[int, ...] = ()
    tags: tuple[str, ...] = ()
    media_type: str = "application/json"  # of the success answer (pages, scripts, metrics differ)
    success_status: int = 200  # a redirect (3xx) answers with a Location and no body
    # The error body for this route (default: OpenAI's envelope; the Anthropic route renders its own).
    error_body: Callable[[Any], Any] | None = None

    @property
    def lifeline(self) -> bool:
        """Served with a lifeline (``api/lifeline.py``): a client leaving, a deadline or the server's
        shutdown ends it early."""
        return self.generates or self.watched

    def route(self, app: Any = None) -> Route:
        """The Starlette route, calling ``app`` (an ASGI app) instead of the endpoint when given."""
        return Route(self.path, self.endpoint if app is None else app, methods=list(self.methods))

    def statuses(self) -> tuple[int, ...]:
        """Error statuses this route may answer, for the OpenAPI document."""
        found = {*self.errors, *ANY_ERRORS}
        if not self.public:
            found.update(AUTH_ERRORS)
        if self.request_model is not None:
            found.update(BODY_ERRORS)
        if self.lifeline:
            found.add(503)  # still running when the server's drain time ran out
        if self.generates:
            found.add(504)  # past the request's deadline
        return tuple(sorted(found))


def public_paths(specs: Iterable[RouteSpec]) -> frozenset[str]:
    return frozenset(spec.path for spec in specs if spec.public)


def generating_paths(specs: Iterable[RouteSpec]) -> frozenset[str]:
    return frozenset(spec.path for spec in specs if spec.generates)
