"""Per-request phase timings, the ``X-Lattice-*-Ms`` headers and the ``lattice.request`` log line.

Times come from ``time.perf_counter`` and are reported in milliseconds with microsecond resolution
(the original rounded to whole ms, which made sub-millisecond phases read as 0); its two legacy
headers keep their whole-millisecond integers for the clients that parse them as such.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

log = logging.getLogger("lattice.request")


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.3f}"


@dataclass(slots=True)
class Timings:
    started: float
    resolve: float = 0.0
    queue: float = 0.0
    upstream: float = 0.0

    def total(self) -> float:
        return time.perf_counter() - self.started

    def headers(self) -> dict[str, str]:
        found: dict[str, str] = {}
        self.put_headers(found)
        return found

    def put_headers(self, headers: dict[str, str]) -> None:
        """Set the four ``X-Lattice-*-Ms`` headers in ``headers``, and the original's
        ``X-MLX-Latency-Ms`` (upstream) and ``X-MLX-Queue-Wait-Ms`` in whole milliseconds, as it sent them."""
        headers["X-Lattice-Resolve-Ms"] = f"{self.resolve * 1000:.3f}"
        headers["X-Lattice-Queue-Ms"] = f"{self.queue * 1000:.3f}"
        headers["X-Lattice-Upstream-Ms"] = f"{self.upstream * 1000:.3f}"
        headers["X-Lattice-Total-Ms"] = f"{(time.perf_counter() - self.started) * 1000:.3f}"
        headers["X-MLX-Latency-Ms"] = str(round(self.upstream * 1000))
        headers["X-MLX-Queue-Wait-Ms"] = str(round(self.queue * 1000))

    def log(
        self,
        *,
        path: str,
        status: int,
        request_id: str,
        model: str = "",
        extra: str = "",
        total: float | None = None,
        at: float | None = None,
    ) -> None:
        """The ``lattice.request`` line; ``total`` (seconds) and ``at`` (epoch seconds) when the
        request ended before the line is written."""
        if not log.isEnabledFor(logging.INFO):
            return
        total = self.total() if total is None else total
        message = (
            f"lattice.request resolve_ms={ms(self.resolve)} queue_ms={ms(self.queue)} "
            f"upstream_ms={ms(self.upstream)} total_ms={ms(total)} path={path} status={status} "
            f"model={model or '-'} request_id={request_id}{extra}"
        )
        log.handle(request_record(message, request_id, at))


def request_record(message: str, request_id: str, at: float | None = None) -> logging.LogRecord:
    """The timing line's log record, made without ``Logger.info``'s machinery: every request logs
    one, and a record built field by field from a template costs a fraction of ``LogRecord()``.
    It carries what ``logging.LogRecord`` does with the optimisations ``observability.logs``
    switches on (no caller, thread or process fields)."""
    record = logging.LogRecord.__new__(logging.LogRecord)
    now = time.time_ns() if at is None else int(at * 1e9)
    fields = dict(_TEMPLATE)
    fields["msg"] = message
    fields["request_id"] = request_id
    fields["created"] = now / 1e9
    fields["msecs"] = (now % 1_000_000_000) // 1_000_000 + 0.0
    fields["relativeCreated"] = (now - logging._startTime) / 1e6  # type: ignore[attr-defined]
    record.__dict__.update(fields)
    return record


_TEMPLATE: Mapping[str, object] = MappingProxyType(
    {
        **logging.makeLogRecord({"name": log.name, "levelno": logging.INFO, "levelname": "INFO"}).__dict__,
        "pathname": "(unknown file)",
        "filename": "(unknown file)",
        "module": "(unknown module)",
        "lineno": 0,
        "funcName": "(unknown function)",
        "args": (),
        "thread": None,
        "threadName": None,
        "processName": None,
        "process": None,
    }
)
