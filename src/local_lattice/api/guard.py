"""Pure ASGI middleware behind the front door: rate limits and request-body limits.

For routes the table marks ``generates`` it reads the (already capped) body once, decodes it,
checks the size limits, estimates its tokens and leaves the decoded body in
``scope["state"]["json"]`` so the handler does not parse it again; the body is replayed to the
handler unchanged. Every authenticated request passes the limiter (when limits are configured);
when it ends, the real usage on the request's record (``scope["state"]["record"]``) corrects the
token estimate. Public routes pass straight through. Decisions live in ``local_lattice.security``.

A generating route given in ``direct`` is called straight from here, without the router's matching
and exception layers: those routes carry the traffic, and each layer costs a call per message.
``direct`` maps a path to an ASGI app that renders its own errors (``api.app.Handled``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Mapping
from typing import TYPE_CHECKING

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from local_lattice.api.middleware import send_error
from local_lattice.config import LimitsConfig
from local_lattice.errors import LatticeError
from local_lattice.observability.record import RequestRecord
from local_lattice.security.inputs import check_body, decode_json, estimate_tokens
from local_lattice.security.keys import ANONYMOUS
from local_lattice.security.limits import Limiter, Ticket

if TYPE_CHECKING:
    from local_lattice.state.limits import SharedLimiter, SharedTicket


async def read_body(receive: Receive) -> bytes:
    parts: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        parts.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    return b"".join(parts)


def replay(body: bytes, receive: Receive) -> Receive:
    """A receive that gives ``body`` once, then defers to ``receive`` (for disconnects)."""
    sent = False

    async def receive_again() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return receive_again


def _observe(scope: Scope, exc: LatticeError) -> None:
    """Count a request the guard refused, as the app's exception handlers count the others."""
    app = scope.get("app")
    gateway = getattr(getattr(app, "state", None), "gateway", None)
    if gateway is not None:
        gateway.observer.begin(scope["state"], scope["path"], "refused")
        gateway.observer.fail(scope["state"], exc.status, exc.code or exc.type, scope["path"])


class Guard:
    def __init__(
        self,
        app: ASGIApp,
        *,
        limits: LimitsConfig,
        limiter: Limiter | SharedLimiter | None,
        generating_paths: Collection[str],
        public_paths: Collection[str],
        clock: Callable[[], float] = time.monotonic,
        direct: Mapping[str, ASGIApp] | None = None,
    ) -> None:
        self.app = app
        self.direct = dict(direct or {})
        self.limits = limits
        self.limiter = limiter if limiter is not None and limiter.enabled else None
        self.generating = frozenset(generating_paths)
        self.public = frozenset(public_paths)
        self.clock = clock

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in self.public:
            await self.app(scope, receive, send)
            return
        generating = scope["method"] == "POST" and scope["path"] in self.generating
        if not generating and self.limiter is None:
            await self.app(scope, receive, send)
            return
        state = scope["state"]
        tokens = 0
        if generating:
            try:
                raw = await read_body(receive)
                data = decode_json(raw)
                check_body(data, self.limits, raw)
            except LatticeError as exc:
                _observe(scope, exc)
                await send_error(send, exc)
                return
            state["json"] = data
            receive = replay(raw, receive)
            if self.limiter is not None and self.limiter.counts_tokens:
                tokens = estimate_tokens(data, self.limits)
        app = self.direct.get(scope["path"], self.app) if generating else self.app
        if self.limiter is None:
            await app(scope, receive, send)
            return
        await self._limited(self.limiter, app, scope, receive, send, tokens)

    async def _limited(
        self, limiter: Limiter | SharedLimiter, app: ASGIApp, scope: Scope, receive: Receive, send: Send, tokens: int
    ) -> None:
        state = scope["state"]
        client = scope.get("client")
        address = client[0] if client else "unknown"
        key_name = state.get("key_name", ANONYMOUS)
        local: Ticket | None = None
        shared: SharedTicket | None = None
        try:
            if isinstance(limiter, Limiter):
                local = limiter.admit(key_name, address, tokens, self.clock())
            else:
                shared = await limiter.admit(key_name, address, tokens, self.clock())
        except LatticeError as exc:
            _observe(scope, exc)
            await send_error(send, exc)
            return
        try:
            await app(scope, receive, send)
        finally:
            record = state.get("record")
            used = record.input_tokens + record.output_tokens if isinstance(record, RequestRecord) else None
            if local is not None and isinstance(limiter, Limiter):
                limiter.release(local, used, self.clock())
            elif shared is not None and not isinstance(limiter, Limiter):
                await limiter.release(shared, used, self.clock())
