"""Read a request's queue controls (body ``queue{}``, ``X-MLX-*`` / ``X-Lattice-*`` headers) into a
``QueueContext``. Pure: the clocks are passed in; it raises ``InvalidRequest`` for bad waits.

Precedence: body over ``X-Lattice-*`` over ``X-MLX-*``. A priority that is not a number (or is a
boolean) falls back to the default, then is clamped; a negative wait or deadline is a 400; a
deadline above 3e9 ms is epoch milliseconds, below it is relative to now.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from local_lattice.admission.tickets import ANONYMOUS, QueueContext
from local_lattice.errors import InvalidRequest

EPOCH_MS_THRESHOLD = 3e9
MAX_WAIT_CEILING_SEC = 3600.0  # a queue place is memory and a socket; nobody needs to hold one for longer


@dataclass(frozen=True, slots=True)
class PriorityPolicy:
    """The priorities a request may ask for (``queue.priority``, ``X-Lattice-Priority`` …): the
    default and the bounds a priority is clamped to."""

    default: int = 0
    minimum: int = -10
    maximum: int = 10

    def clamp(self, value: int) -> int:
        return max(self.minimum, min(self.maximum, value))


# The headers that set a request's queue fields (``x-lattice-*`` or the original's ``x-mlx-*``).
QUEUE_HEADERS = frozenset(
    prefix + name for name in ("priority", "max-queue-wait-ms", "deadline-ms") for prefix in ("x-lattice-", "x-mlx-")
)


def _header(headers: Mapping[str, str], name: str) -> str | None:
    for prefix in ("x-lattice-", "x-mlx-"):
        value = headers.get(prefix + name)
        if value is not None:
            return value
    return None


def _pick(queue: Mapping[str, Any], key: str, headers: Mapping[str, str], header: str) -> Any:
    value = queue.get(key)
    return value if value is not None else _header(headers, header)


def _number(value: Any) -> float | None:
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            return None
    else:
        return None
    return number if math.isfinite(number) else None


def priority_of(value: Any, policy: PriorityPolicy) -> int:
    number = _number(value)
    return policy.clamp(policy.default if number is None else int(number))


def _millis(value: Any, what: str) -> float | None:
    if value is None:
        return None
    number = _number(value)
    if number is None:
        raise InvalidRequest(f"{what} must be a number of milliseconds, got {value!r}", param=what)
    if number < 0:
        raise InvalidRequest(f"{what} must not be negative, got {value!r}", param=what)
    return number


def client_of(headers: Mapping[str, str]) -> str:
    """A stable, non-reversible name for the caller's API key (fairness is per key)."""
    given = headers.get("x-api-key")
    if not given:
        auth = headers.get("authorization", "")
        given = auth[7:].strip() if auth[:7].lower() == "bearer " else ""
    if not given:
        return ANONYMOUS
    return "key:" + hashlib.sha256(given.encode()).hexdigest()[:12]


def context_of(
    body_queue: Any,
    headers: Mapping[str, str],
    *,
    policy: PriorityPolicy,
    now: float,
    wall_now: float,
) -> QueueContext:
    """The ``QueueContext`` of one request. ``headers`` keys are lower-case; ``now`` is the admission
    clock and ``wall_now`` the epoch clock, both in seconds."""
    if body_queue is not None and not isinstance(body_queue, dict):
        raise InvalidRequest("queue must be an object {priority, max_queue_wait_ms, deadline_ms}", param="queue")
    queue: Mapping[str, Any] = body_queue or {}
    priority = priority_of(_pick(queue, "priority", headers, "priority"), policy)
    wait_ms = _millis(_pick(queue, "max_queue_wait_ms", headers, "max-queue-wait-ms"), "queue.max_queue_wait_ms")
    deadline_ms = _millis(_pick(queue, "deadline_ms", headers, "deadline-ms"), "queue.deadline_ms")
    deadline: float | None = None
    if deadline_ms is not None:
        relative = deadline_ms / 1000 - wall_now if deadline_ms > EPOCH_MS_THRESHOLD else deadline_ms / 1000
        deadline = now + relative
    max_wait = None if wait_ms is None else min(wait_ms / 1000, MAX_WAIT_CEILING_SEC)
    return QueueContext(priority=priority, deadline=deadline, max_wait=max_wait, client=client_of(headers))
