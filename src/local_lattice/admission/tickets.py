"""The admission vocabulary: tickets, limits, the context a request carries, and the decisions the
scheduler returns. Plain values only; no clock, no I/O, no asyncio."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

RejectKind = Literal["queue_overloaded_total", "queue_overloaded_model", "queue_timeout", "deadline_exceeded"]
ANONYMOUS = "anonymous"


@dataclass(frozen=True, slots=True)
class QueueContext:
    """How urgently a caller asks, carried from a request to every model call made for it (swarm
    agents and judges are admitted with their parent's context).

    ``deadline`` is absolute on the admission clock (``time.monotonic`` seconds); ``max_wait`` is how
    long one call may wait in a queue (``None``: the configured default)."""

    priority: int = 0
    deadline: float | None = None
    max_wait: float | None = None
    client: str = ANONYMOUS


@dataclass(frozen=True, slots=True)
class Ticket:
    """One model call asking to run. ``model`` is the queue key (``backend/model``)."""

    id: int
    model: str
    backend: str
    client: str
    priority: int
    arrived: float
    wait_until: float
    deadline: float | None = None

    @property
    def expires(self) -> float:
        return self.wait_until if self.deadline is None else min(self.wait_until, self.deadline)


@dataclass(frozen=True, slots=True)
class BackendCaps:
    """Concurrency limits of one backend; 0 means no limit."""

    max_concurrency: int = 64
    per_model: int = 0


@dataclass(frozen=True, slots=True)
class Limits:
    """Every bound the scheduler enforces; 0 in a cap means no limit."""

    queue_max_per_model: int = 32
    queue_max_total: int = 128
    global_cap: int = 0
    backends: Mapping[str, BackendCaps] = field(default_factory=dict)
    default_backend: BackendCaps = field(default_factory=BackendCaps)
    retry_fallback_sec: float = 2.0
    retry_max_sec: float = 60.0
    jitter_sec: float = 0.5

    def caps(self, backend: str) -> BackendCaps:
        return self.backends.get(backend, self.default_backend)


@dataclass(frozen=True, slots=True)
class Depths:
    """Queue and in-flight counts at the moment of a decision (the ``queue{}`` details of a 429)."""

    model: str
    model_waiting: int
    model_inflight: int
    total_waiting: int
    total_inflight: int
    max_per_model: int
    max_total: int
    position: int | None = None

    def as_dict(self) -> dict[str, object]:
        data: dict[str, object] = {
            "model": self.model,
            "model_depth": self.model_waiting,
            "model_inflight": self.model_inflight,
            "total_depth": self.total_waiting,
            "total_inflight": self.total_inflight,
            "max_per_model": self.max_per_model,
            "max_total": self.max_total,
        }
        if self.position is not None:
            data["position"] = self.position
        return data

    def original(self, waited: float) -> dict[str, object]:
        """The same counts in the original's field names (``waited`` in seconds)."""
        return {
            "queued_for_model": self.model_waiting,
            "inflight_for_model": self.model_inflight,
            "queued_total": self.total_waiting,
            "inflight_total": self.total_inflight,
            "waited_ms": round(waited * 1000),
        }


@dataclass(frozen=True, slots=True)
class Rejection:
    kind: RejectKind
    retry_after: int
    estimate: float
    jitter: float
    depths: Depths
    waited: float = 0.0


@dataclass(frozen=True, slots=True)
class Grant:
    ticket_id: int
    waited: float


@dataclass(frozen=True, slots=True)
class Reject:
    """Turned away: at arrival, or shed from a full queue to make room for a fairer newcomer."""

    ticket_id: int
    rejection: Rejection


@dataclass(frozen=True, slots=True)
class Expire:
    """Waited until its wait budget or deadline ran out."""

    ticket_id: int
    rejection: Rejection


@dataclass(frozen=True, slots=True)
class Cancelled:
    ticket_id: int


Decision = Grant | Reject | Expire | Cancelled
Outcome = Grant | Reject | Expire
