"""Pure ASGI middleware: the front door every HTTP request passes.

``FrontDoor`` stamps the start time and request id into the scope, adds the hardening headers and
``X-Request-Id`` to every response, enforces the body cap and checks the API key. It is one layer on
purpose: each ASGI layer costs a call per message on the hot path. It knows nothing of routes
beyond the short list of public paths.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import time
from collections.abc import Sequence

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from local_lattice.errors import AuthenticationFailed, LatticeError, PayloadTooLarge
from local_lattice.observability.logs import REQUEST_ID

SECURITY_HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"cross-origin-resource-policy", b"same-origin"),
)
_REQUEST_ID = re.compile(rb"^[A-Za-z0-9._:\-]{1,128}$")
PUBLIC_PATHS = frozenset({"/healthz", "/openapi.json"})


def key_name(key: str) -> str:
    """A stable, non-reversible name for an API key (ledger and dashboard show this, never the key)."""
    return "key-" + hashlib.sha256(key.encode()).hexdigest()[:8]


def _header(scope: Scope, name: bytes) -> bytes | None:
    for key, value in scope["headers"]:
        if key == name:
            return value  # type: ignore[no-any-return]
    return None


async def send_error(send: Send, exc: LatticeError, extra_headers: Sequence[tuple[bytes, bytes]] = ()) -> None:
    """Render ``exc`` as the OpenAI envelope straight onto the wire (used before routing)."""
    body = orjson.dumps(exc.envelope())
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    headers.extend((k.lower().encode(), v.encode()) for k, v in exc.headers.items())
    headers.extend(extra_headers)
    await send({"type": "http.response.start", "status": exc.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class FrontDoor:
    def __init__(
        self,
        app: ASGIApp,
        *,
        api_keys: Sequence[str],
        max_request_bytes: int,
        public_prefixes: Sequence[str] = (),
        protected_prefixes: Sequence[str] = (),
        prefix_headers: Sequence[tuple[str, Sequence[tuple[bytes, bytes]]]] = (),
    ) -> None:
        """``public_prefixes`` need no key, except paths under ``protected_prefixes`` (a page's API);
        ``prefix_headers`` adds headers to every response under a prefix (a page's CSP)."""
        self.app = app
        self.keys = [key.encode() for key in api_keys]
        self.key_names = [key_name(key) for key in api_keys]
        self.max_request_bytes = max_request_bytes
        self.public_prefixes = tuple(public_prefixes)
        self.protected_prefixes = tuple(protected_prefixes)
        self.prefix_headers = tuple((prefix, tuple(headers)) for prefix, headers in prefix_headers)

    def _public(self, path: str) -> bool:
        if path in PUBLIC_PATHS:
            return True
        return bool(
            self.public_prefixes
            and path.startswith(self.public_prefixes)
            and not (self.protected_prefixes and path.startswith(self.protected_prefixes))
        )

    def _authorized(self, scope: Scope) -> bool:
        if not self.keys:
            return True
        path: str = scope["path"]
        if self._public(path):
            return True
        if scope["method"] == "OPTIONS" and _header(scope, b"access-control-request-method") is not None:
            return True  # CORS preflight carries no credentials by design
        given = _header(scope, b"x-api-key")
        if given is None:
            auth = _header(scope, b"authorization")
            if auth is not None and auth[:7].lower() == b"bearer ":
                given = auth[7:].strip()
        if not given:
            return False
        matched = -1
        for index, key in enumerate(self.keys):  # compare with every key: timing says nothing of which matched
            if hmac.compare_digest(given, key):
                matched = index
        if matched < 0:
            return False
        scope["state"]["key_name"] = self.key_names[matched]
        return True

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        rid = _header(scope, b"x-request-id")
        if rid is None or not _REQUEST_ID.match(rid):
            rid = os.urandom(8).hex().encode()
        state = scope.setdefault("state", {})
        state["started"] = started
        state["request_id"] = rid.decode()
        extra: tuple[tuple[bytes, bytes], ...] = (*SECURITY_HEADERS, (b"x-request-id", rid))
        for prefix, headers in self.prefix_headers:
            if scope["path"].startswith(prefix):
                extra = (*extra, *headers)

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), *extra]
            await send(message)

        token = REQUEST_ID.set(state["request_id"])
        try:
            await self._guarded(scope, receive, send_with_headers)
        finally:
            REQUEST_ID.reset(token)

    async def _guarded(self, scope: Scope, receive: Receive, send_with_headers: Send) -> None:
        if not self._authorized(scope):
            await send_error(
                send_with_headers,
                AuthenticationFailed("missing or invalid API key: send X-API-Key or Authorization: Bearer"),
            )
            return
        length = _header(scope, b"content-length")
        limit = self.max_request_bytes
        if length is not None and length.isdigit() and int(length) > limit:
            await send_error(send_with_headers, PayloadTooLarge(f"request body is larger than {limit} bytes"))
            return
        received = 0

        async def receive_capped() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise PayloadTooLarge(f"request body is larger than {limit} bytes")
            return message

        await self.app(scope, receive_capped, send_with_headers)
