"""CORS as a pure policy: which origins may call, what a preflight answers, what a response adds.

Only origins listed in ``CORS_ORIGINS`` (or ``*``) are answered; ``*`` never comes with credentials
(the config refuses that pair). A preflight from an unlisted origin gets no CORS headers, so the
browser blocks the call.
"""

from __future__ import annotations

from collections.abc import Sequence

ALLOW_METHODS = b"GET, POST, DELETE, OPTIONS"
ALLOW_HEADERS = b"Authorization, X-API-Key, Content-Type, X-Request-Id"
EXPOSE_HEADERS = b"X-Request-Id, X-Model-Routed-To, X-Model-Resolution, Retry-After"
MAX_AGE = b"600"

Headers = list[tuple[bytes, bytes]]


class CorsPolicy:
    """The allowed browser origins and the CORS headers of answers and preflights."""

    def __init__(self, origins: Sequence[str], allow_credentials: bool = False) -> None:
        self.any_origin = "*" in origins
        self.origins = frozenset(o.rstrip("/").encode() for o in origins if o != "*")
        self.credentials = allow_credentials and not self.any_origin

    def allows(self, origin: bytes) -> bool:
        return self.any_origin or origin in self.origins

    def _base(self, origin: bytes) -> Headers:
        headers = [(b"access-control-allow-origin", b"*" if self.any_origin else origin), (b"vary", b"Origin")]
        if self.credentials:
            headers.append((b"access-control-allow-credentials", b"true"))
        return headers

    def response_headers(self, origin: bytes | None) -> Headers:
        """Headers for an actual (non-preflight) response to ``origin``; none when not allowed."""
        if origin is None or not self.allows(origin):
            return []
        return [*self._base(origin), (b"access-control-expose-headers", EXPOSE_HEADERS)]

    def preflight_headers(self, origin: bytes | None) -> Headers:
        if origin is None or not self.allows(origin):
            return []
        return [
            *self._base(origin),
            (b"access-control-allow-methods", ALLOW_METHODS),
            (b"access-control-allow-headers", ALLOW_HEADERS),
            (b"access-control-max-age", MAX_AGE),
        ]
