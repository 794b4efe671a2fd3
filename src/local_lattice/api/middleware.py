"""Pure ASGI middleware: the front door every HTTP request passes.

``FrontDoor`` stamps the start time and request id into the scope (and the request-id context
variable the log filter reads), adds the hardening headers, ``X-Request-Id`` and any CORS headers
to every response (errors included), answers CORS preflights, refuses keys in the query string,
checks the API key (recording the key's *name* as ``scope["state"]["key_name"]``; on public paths a
valid key is recorded too, without refusing anyone) and enforces the body cap. It is one layer on
purpose: each ASGI layer costs a call per message on the hot path. It knows nothing of routes
beyond the set of public paths it is given.
"""

from __future__ import annotations

import logging
import random
import re
import time
from collections.abc import Collection, Sequence

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from local_lattice.api.payload import header_value
from local_lattice.errors import (
    AuthenticationFailed,
    InvalidRequest,
    LatticeError,
    PayloadTooLarge,
)
from local_lattice.observability.logs import REQUEST_ID
from local_lattice.security.cors import CorsPolicy
from local_lattice.security.keys import ANONYMOUS, KeyRing

log = logging.getLogger("lattice.api")

SECURITY_HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"cross-origin-resource-policy", b"same-origin"),
)
_REQUEST_ID = re.compile(rb"^[A-Za-z0-9._:\-]{1,128}$")
PUBLIC_PATHS = frozenset({"/healthz", "/openapi.json"})
# Query parameters that look like credentials: refused so keys never sit in URLs, proxies' logs or history.
QUERY_KEY_NAMES = frozenset({b"api_key", b"api-key", b"apikey", b"key", b"access_token", b"token", b"x-api-key"})
NO_KEY = "missing or invalid API key: send X-API-Key or Authorization: Bearer"
QUERY_KEY = "API keys in the URL are refused (they leak into logs and history): send X-API-Key or Authorization: Bearer"


def header_dict(scope: Scope) -> dict[bytes, bytes]:
    """The request's headers by (lower-case) name, the first of repeated names winning; made once
    per request by the front door and kept as ``scope["state"]["headers"]``."""
    state = scope.setdefault("state", {})
    found: dict[bytes, bytes] | None = state.get("headers")
    if found is None:
        found = state["headers"] = dict(reversed(scope["headers"]))
    return found


def presented_keys(headers: dict[bytes, bytes]) -> list[bytes]:
    """Every credential the request carries: ``X-API-Key`` and/or ``Authorization`` (which must be
    ``Bearer <key>``; anything else there is malformed and comes back empty)."""
    found = []
    given = headers.get(b"x-api-key")
    if given is not None:
        found.append(given)
    auth = headers.get(b"authorization")
    if auth is not None:
        found.append(auth[7:].strip() if auth[:7].lower() == b"bearer " else b"")
    return found


def has_query_key(query: bytes) -> bool:
    return any(part.partition(b"=")[0].lower() in QUERY_KEY_NAMES for part in query.split(b"&"))


async def send_error(send: Send, exc: LatticeError, extra_headers: Sequence[tuple[bytes, bytes]] = ()) -> None:
    """Render ``exc`` as the OpenAI envelope straight onto the wire (used outside routing)."""
    body = orjson.dumps(exc.envelope())
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    headers.extend((k.lower().encode(), header_value(v)) for k, v in exc.headers.items())
    headers.extend(extra_headers)
    await send({"type": "http.response.start", "status": exc.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class FrontDoor:
    def __init__(
        self,
        app: ASGIApp,
        *,
        keys: KeyRing,
        max_request_bytes: int,
        public_paths: Collection[str] = PUBLIC_PATHS,
        public_prefixes: Sequence[str] = (),
        protected_prefixes: Sequence[str] = (),
        prefix_headers: Sequence[tuple[str, Sequence[tuple[bytes, bytes]]]] = (),
        cors: CorsPolicy | None = None,
    ) -> None:
        """``public_prefixes`` need no key, except paths under ``protected_prefixes`` (a page's API);
        ``prefix_headers`` adds headers to every response under a prefix (a page's CSP)."""
        self.app = app
        self.keys = keys
        self.max_request_bytes = max_request_bytes
        self.public_paths = frozenset(public_paths)
        self.public_prefixes = tuple(public_prefixes)
        self.protected_prefixes = tuple(protected_prefixes)
        self.prefix_headers = tuple((prefix, tuple(headers)) for prefix, headers in prefix_headers)
        self.cors = cors
        # Request ids need to be unique, not secret: a seeded generator instead of a syscall per request.
        self._ids = random.Random()

    def _is_public(self, path: str) -> bool:
        if path in self.public_paths:
            return True
        return bool(
            self.public_prefixes
            and path.startswith(self.public_prefixes)
            and not (self.protected_prefixes and path.startswith(self.protected_prefixes))
        )

    def _refusal(self, scope: Scope) -> LatticeError | None:
        """Why this request may not pass, or None; records the key's name when it may, and whether
        the caller proved a key (``authenticated``: a public route may show such a caller more)."""
        state = scope["state"]
        if not self.keys:
            state["key_name"], state["authenticated"] = ANONYMOUS, True
            return None
        if self._is_public(scope["path"]):
            presented = presented_keys(state["headers"])
            names = [name for name in map(self.keys.match, presented) if name is not None]
            valid = bool(names) and b"" not in presented
            state["key_name"], state["authenticated"] = (names[0] if valid else ANONYMOUS), valid
            return None
        if scope["query_string"] and has_query_key(scope["query_string"]):
            return AuthenticationFailed(QUERY_KEY, code="api_key_in_query")
        # A malformed credential is refused outright; otherwise one valid key admits (its name is recorded).
        presented = presented_keys(state["headers"])
        if b"" in presented:
            return AuthenticationFailed(NO_KEY)
        names = [name for name in map(self.keys.match, presented) if name is not None]
        if not names:
            return AuthenticationFailed(NO_KEY)
        state["key_name"], state["authenticated"] = names[0], True
        return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        rid = header_dict(scope).get(b"x-request-id")
        if rid is None or not _REQUEST_ID.match(rid):
            rid = b"%016x" % self._ids.getrandbits(64)
        state = scope["state"]
        state["started"] = started
        state["request_id"] = rid.decode()
        token = REQUEST_ID.set(state["request_id"])
        try:
            await self._serve(scope, receive, send, rid)
        finally:
            REQUEST_ID.reset(token)

    async def _serve(self, scope: Scope, receive: Receive, send: Send, rid: bytes) -> None:
        extra = [*SECURITY_HEADERS, (b"x-request-id", rid)]
        for prefix, headers in self.prefix_headers:
            if scope["path"].startswith(prefix):
                extra.extend(headers)
        headers = scope["state"]["headers"]
        origin = headers.get(b"origin") if self.cors is not None else None
        if self.cors is not None:
            preflight = scope["method"] == "OPTIONS" and headers.get(b"access-control-request-method") is not None
            if preflight and origin is not None:
                await self._preflight(self.cors, origin, send, extra)
                return
            extra.extend(self.cors.response_headers(origin))
        started = False

        async def send_with_headers(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                message["headers"] = [*message.get("headers", ()), *extra]
            await send(message)

        # The head's size is capped by the server protocol (``connection_guard``) before it is buffered.
        refusal = self._refusal(scope)
        if refusal is not None:
            await send_error(send_with_headers, refusal)
            return
        limit = self.max_request_bytes
        length = headers.get(b"content-length")
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

        try:
            await self.app(scope, receive_capped, send_with_headers)
        except Exception:
            if started:
                raise
            # A bug below the exception handlers: still an envelope with every header, never a traceback.
            log.exception("unhandled error on %s %s", scope["method"], scope["path"])
            await send_error(send_with_headers, LatticeError("internal error; the gateway keeps running"))

    @staticmethod
    async def _preflight(cors: CorsPolicy, origin: bytes, send: Send, extra: list[tuple[bytes, bytes]]) -> None:
        allowed = cors.preflight_headers(origin)
        if not allowed:
            refusal = InvalidRequest("this origin may not call the gateway", code="cors_origin_not_allowed")
            await send_error(send, refusal, extra)
            return
        headers = [*allowed, *extra, (b"content-length", b"0")]
        await send({"type": "http.response.start", "status": 204, "headers": headers})
        await send({"type": "http.response.body", "body": b""})
