"""The request id of the request being served, as a context variable.

The front door sets it for the duration of each request so every log line written while serving
it can carry ``request_id`` (the log filter reads it); outside a request it is ``-``.
"""

from __future__ import annotations

from contextvars import ContextVar

REQUEST_ID: ContextVar[str] = ContextVar("lattice_request_id", default="-")
