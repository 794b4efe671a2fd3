"""One error hierarchy, rendered by the API layer as the OpenAI error envelope.

    LatticeError                       500 internal_error
    ├── InvalidRequest                 400 invalid_request_error
    │   └── ContextTooLong             400 context_length_exceeded
    ├── AuthenticationFailed           401 authentication_error
    ├── NotFound                       404 not_found_error
    │   └── ModelNotFound              404 model_not_found
    ├── PayloadTooLarge                413 request_too_large
    ├── HeadersTooLarge                431 request_headers_too_large
    ├── RateLimited                    429 (type given by the limiter, e.g. queue_timeout)
    ├── ClientClosedRequest            499 client_disconnected (recorded only: nobody is left to read it)
    ├── UpstreamError                  502 upstream_error (a backend failed or answered garbage)
    │   └── UpstreamStatusError        the upstream's own 4xx status and message
    ├── BackendUnavailable             503 backend_unavailable, with Retry-After
    ├── ServerShuttingDown             503 server_shutting_down, with Retry-After
    ├── TooManyConnections             503 too_many_connections (the server's connection cap)
    ├── DeadlineExceeded               504 deadline_exceeded (the request's own deadline passed)
    └── NotImplementedRoute            501 not_implemented

Backends translate their foreign exceptions (aiohttp, llama.cpp, anthropic …) into these in one
place each; handlers raise; a single exception handler renders them. This module does no I/O.
"""

from __future__ import annotations

import math
from typing import Any

from local_lattice.masking import redact


class LatticeError(Exception):
    status = 500
    type = "internal_error"
    code: str | None = "internal_error"

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        param: str | None = None,
        headers: dict[str, str] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.param = param
        self.headers: dict[str, str] = headers or {}
        self.extra: dict[str, Any] = extra or {}

    def envelope(self) -> dict[str, Any]:
        """The OpenAI error body: ``{"error": {"message", "type", "code", "param"}}`` plus extras.

        Key-shaped text in the message (an upstream echoing a key, say) is masked."""
        error: dict[str, Any] = {
            "message": redact(self.message),
            "type": self.type,
            "code": self.code,
            "param": self.param,
        }
        error.update(self.extra)
        return {"error": error}


class InvalidRequest(LatticeError):
    status = 400
    type = "invalid_request_error"
    code = "invalid_request"


class ContextTooLong(InvalidRequest):
    code = "context_length_exceeded"


class AuthenticationFailed(LatticeError):
    status = 401
    type = "authentication_error"
    code = "invalid_api_key"


class NotFound(LatticeError):
    status = 404
    type = "not_found_error"
    code = "not_found"


class ModelNotFound(NotFound):
    type = "invalid_request_error"
    code = "model_not_found"


class PayloadTooLarge(LatticeError):
    status = 413
    type = "invalid_request_error"
    code = "request_too_large"


class HeadersTooLarge(LatticeError):
    status = 431
    type = "invalid_request_error"
    code = "request_headers_too_large"


class RateLimited(LatticeError):
    status = 429
    type = "rate_limit_error"
    code = "rate_limited"

    def __init__(
        self, message: str, *, retry_after: float, kind: str | None = None, waited: float | None = None, **kw: Any
    ) -> None:
        super().__init__(message, **kw)
        self.retry_after = retry_after
        self.waited = waited  # seconds spent in the gateway's queue before the refusal (None: not queued)
        if kind is not None:
            self.type = kind
            self.code = kind
        # Rounded up: a client that waits the advertised seconds must find room.
        self.headers.setdefault("Retry-After", str(max(1, math.ceil(retry_after))))


class ClientClosedRequest(LatticeError):
    """The client went away before its answer was complete (nginx's 499). Only ever recorded."""

    status = 499
    type = "client_disconnected"
    code = "client_disconnected"


class UpstreamError(LatticeError):
    status = 502
    type = "upstream_error"
    code = "bad_gateway"

    def __init__(self, message: str, *, backend: str = "", **kw: Any) -> None:
        super().__init__(message, **kw)
        self.backend = backend


class UpstreamStatusError(UpstreamError):
    """The upstream answered a client error (4xx); we pass its status and message on."""

    def __init__(self, message: str, *, status: int, backend: str = "", **kw: Any) -> None:
        super().__init__(message, backend=backend, **kw)
        self.status = status
        self.type = "invalid_request_error" if status < 500 else "upstream_error"
        self.code = f"upstream_{status}"


class BackendUnavailable(LatticeError):
    status = 503
    type = "backend_unavailable"
    code = "backend_unavailable"

    def __init__(self, message: str, *, retry_after: float = 5.0, backend: str = "", **kw: Any) -> None:
        super().__init__(message, **kw)
        self.backend = backend
        self.headers.setdefault("Retry-After", str(max(1, round(retry_after))))


class TooManyConnections(LatticeError):
    status = 503
    type = "service_unavailable"
    code = "too_many_connections"

    def __init__(self, message: str, **kw: Any) -> None:
        super().__init__(message, **kw)
        self.headers.setdefault("Retry-After", "1")


class NotImplementedRoute(LatticeError):
    status = 501
    type = "not_implemented"
    code = "not_implemented"


class ServerShuttingDown(LatticeError):
    """The server is stopping and the drain time ran out before this request finished."""

    status = 503
    type = "server_shutting_down"
    code = "server_shutting_down"

    def __init__(self, message: str = "the gateway is shutting down; retry shortly", **kw: Any) -> None:
        super().__init__(message, **kw)
        self.headers.setdefault("Retry-After", "1")


class DeadlineExceeded(LatticeError):
    """The request's deadline (``deadline_ms``, ``X-Lattice-Deadline-Ms``) passed before its answer."""

    status = 504
    type = "deadline_exceeded"
    code = "deadline_exceeded"
