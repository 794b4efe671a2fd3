"""Per-request phase timings, the ``X-Lattice-*-Ms`` headers and the ``lattice.request`` log line.

Times come from ``time.perf_counter`` and are reported in milliseconds with microsecond resolution
(the original rounded to whole ms, which made sub-millisecond phases read as 0).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

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
        return {
            "X-Lattice-Resolve-Ms": ms(self.resolve),
            "X-Lattice-Queue-Ms": ms(self.queue),
            "X-Lattice-Upstream-Ms": ms(self.upstream),
            "X-Lattice-Total-Ms": ms(self.total()),
        }

    def log(self, *, path: str, status: int, request_id: str, model: str = "", extra: str = "") -> None:
        if not log.isEnabledFor(logging.INFO):
            return
        log.info(
            "lattice.request resolve_ms=%s queue_ms=%s upstream_ms=%s total_ms=%s path=%s status=%s "
            "model=%s request_id=%s%s",
            ms(self.resolve),
            ms(self.queue),
            ms(self.upstream),
            ms(self.total()),
            path,
            status,
            model or "-",
            request_id,
            extra,
        )
