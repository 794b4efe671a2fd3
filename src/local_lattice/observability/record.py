"""The one record every finished request leaves behind, and the swarm run record.

``RequestRecord`` is filled in along the request path (route, models, tokens, timings) and handed
to ``Observer.finish`` exactly once; metrics, the events ring, the ledger and traces all read it.
It holds metadata only: a prompt preview is set only when prompt capture is on.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from local_lattice.observability.timing import Timings


@dataclass(slots=True)
class RequestRecord:
    request_id: str
    route: str
    timings: Timings
    key_name: str = "-"
    time: float = field(default_factory=time.time)
    operation: str = "chat"
    requested_model: str = ""
    model: str = ""
    backend: str = ""
    stream: bool = False
    input_tokens: int = 0
    output_tokens: int = 0
    latency: float = 0.0
    ttft: float | None = None
    status: int = 0
    error_kind: str | None = None
    cost: float | None = None
    preview: str | None = None
    span: Any = None
    done: bool = False

    @property
    def overhead(self) -> float:
        """Time the gateway itself spent: everything but the upstream's own time."""
        return max(0.0, self.latency - self.timings.upstream)

    @property
    def tokens_per_second(self) -> float | None:
        generating = self.latency - (self.ttft or 0.0)
        if self.output_tokens <= 0 or generating <= 0:
            return None
        return self.output_tokens / generating

    def as_event(self) -> dict[str, Any]:
        """The dashboard's view: plain JSON, milliseconds, no secrets."""
        tps = self.tokens_per_second
        return {
            "time": self.time,
            "request_id": self.request_id,
            "key": self.key_name,
            "route": self.route,
            "requested_model": self.requested_model,
            "model": self.model,
            "backend": self.backend,
            "stream": self.stream,
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "latency_ms": round(self.latency * 1000, 3),
            "ttft_ms": None if self.ttft is None else round(self.ttft * 1000, 3),
            "queue_ms": round(self.timings.queue * 1000, 3),
            "upstream_ms": round(self.timings.upstream * 1000, 3),
            "tokens_per_s": None if tps is None else round(tps, 2),
            "status": self.status,
            "error_kind": self.error_kind,
            "cost": self.cost,
            "preview": self.preview,
        }

    def as_original_event(self) -> dict[str, Any]:
        """The original dashboard's event row. Its ``preview`` is empty unless prompt capture is on
        (the original kept a preview of the last user message even when capture was off)."""
        tps = self.tokens_per_second
        stream = "_stream" if self.stream else ""
        preview = {} if self.preview is None else {"last_user_preview": self.preview}
        return {
            "request_id": self.request_id,
            "parent_request_id": None,
            "agent_slot": None,
            "route_kind": f"{self.operation}{stream}",
            "requested_model": self.requested_model,
            "resolved_model": self.model,
            "backend": self.backend,
            "stream": self.stream,
            "prompt_tokens": self.input_tokens,
            "completion_tokens": self.output_tokens,
            "total_tokens": self.input_tokens + self.output_tokens,
            "latency_ms": round(self.latency * 1000),
            "tokens_per_sec": None if tps is None else round(tps, 3),
            "status": "ok" if self.status < 400 else "error",
            "error": self.error_kind,
            "preview": preview,
            "ts": self.time,
        }


@dataclass(frozen=True, slots=True)
class SwarmCandidate:
    model: str
    ok: bool
    latency: float
    error_kind: str | None = None
    score: float | None = None


@dataclass(frozen=True, slots=True)
class SwarmRun:
    """One swarm run as the dashboard shows it: who answered, who won and why."""

    request_id: str
    strategy: str
    candidates: tuple[SwarmCandidate, ...]
    winner: str | None
    rationale: str = ""
    time: float = field(default_factory=time.time)

    def as_event(self) -> dict[str, Any]:
        return {
            "time": self.time,
            "request_id": self.request_id,
            "strategy": self.strategy,
            "winner": self.winner,
            "rationale": self.rationale,
            "candidates": [
                {
                    "model": c.model,
                    "ok": c.ok,
                    "latency_ms": round(c.latency * 1000, 3),
                    "error_kind": c.error_kind,
                    "score": c.score,
                }
                for c in self.candidates
            ],
        }
