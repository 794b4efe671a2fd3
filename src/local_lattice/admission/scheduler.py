"""The admission scheduler: pure decisions over events, no asyncio, no clock of its own.

Events are ``arrive``, ``release``, ``cancel`` and ``tick``; each takes the current time and
returns the decisions it caused (``Grant``, ``Reject``, ``Expire``, ``Cancelled``). The invariants it
keeps are written in ``docs/design/admission.md``; the property tests check them. The one owner of
an instance (``admission.owner.Admission``) applies the decisions on the event loop.
"""

from __future__ import annotations

import math
from collections import Counter, deque
from collections.abc import Iterable

from local_lattice.admission.queues import ModelQueue
from local_lattice.admission.tickets import (
    Cancelled,
    Decision,
    Depths,
    Expire,
    Grant,
    Limits,
    Reject,
    Rejection,
    RejectKind,
    Ticket,
)

EWMA_ALPHA = 0.3  # weight of the newest service time: recent enough to follow a model's load


class Scheduler:
    """The admission decisions, pure: events (``arrive``, ``release``, ``cancel``, ``tick``) go in with
    the time, decisions come out; no I/O, no clock and no tasks of its own (the owner applies them)."""

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self._queues: dict[str, ModelQueue] = {}
        self._ring: deque[str] = deque()  # models with waiters, in round-robin order
        self._waiting: dict[int, Ticket] = {}
        self._inflight: dict[int, tuple[Ticket, float]] = {}
        self._model_inflight: Counter[str] = Counter()
        self._backend_inflight: Counter[str] = Counter()
        self._service: dict[str, float] = {}

    # --- events ------------------------------------------------------------------------------

    def arrive(self, ticket: Ticket, now: float) -> list[Decision]:
        if ticket.id in self._waiting or ticket.id in self._inflight:
            raise ValueError(f"ticket {ticket.id} is already known")
        decisions = self._expire(now)
        if ticket.deadline is not None and ticket.deadline <= now:
            decisions.append(Reject(ticket.id, self.rejection(ticket, "deadline_exceeded", now)))
            return decisions
        queue = self._queues.get(ticket.model)
        if not queue and self._has_room(ticket):
            self._grant(ticket, now)
            decisions.append(Grant(ticket.id, 0.0))
            return decisions
        if ticket.wait_until <= now:
            decisions.append(Reject(ticket.id, self.rejection(ticket, "queue_timeout", now)))
            return decisions
        kinds: tuple[RejectKind, ...] = ("queue_overloaded_model", "queue_overloaded_total")
        for kind in kinds:
            shed = self._make_room(ticket, kind, now)
            if shed is None:
                decisions.append(Reject(ticket.id, self.rejection(ticket, kind, now)))
                return decisions
            decisions.extend(shed)
        self._enqueue(ticket)
        decisions.extend(self._pump(now))
        return decisions

    def release(self, ticket_id: int, now: float) -> list[Decision]:
        """The call of a granted ticket ended; its slot frees. Unknown ids are ignored."""
        if ticket_id in self._waiting:
            return self.cancel(ticket_id, now)
        entry = self._inflight.pop(ticket_id, None)
        decisions = self._expire(now)
        if entry is not None:
            ticket, granted = entry
            self._model_inflight[ticket.model] -= 1
            self._backend_inflight[ticket.backend] -= 1
            took = max(now - granted, 0.0)
            old = self._service.get(ticket.model)
            self._service[ticket.model] = took if old is None else old + EWMA_ALPHA * (took - old)
        decisions.extend(self._pump(now))
        return decisions

    def cancel(self, ticket_id: int, now: float) -> list[Decision]:
        """The caller gave up. A waiter leaves the queue; a granted ticket is released."""
        if ticket_id in self._inflight:
            return self.release(ticket_id, now)
        ticket = self._waiting.get(ticket_id)
        decisions = self._expire(now)
        if ticket is not None and ticket_id in self._waiting:
            self._unqueue(ticket)
            decisions.append(Cancelled(ticket_id))
        decisions.extend(self._pump(now))
        return decisions

    def tick(self, now: float) -> list[Decision]:
        decisions = self._expire(now)
        decisions.extend(self._pump(now))
        return decisions

    # --- queries -----------------------------------------------------------------------------

    def next_expiry(self) -> float | None:
        if not self._waiting:
            return None
        return min(t.expires for t in self._waiting.values())

    def position(self, ticket_id: int) -> int | None:
        """Tickets of the same model served before this one if nothing else arrives; ``None`` once
        it no longer waits."""
        ticket = self._waiting.get(ticket_id)
        return None if ticket is None else self._queues[ticket.model].position(ticket)

    def is_waiting(self, ticket_id: int) -> bool:
        return ticket_id in self._waiting

    def is_inflight(self, ticket_id: int) -> bool:
        return ticket_id in self._inflight

    def waiting(self) -> list[Ticket]:
        return list(self._waiting.values())

    def inflight(self) -> list[Ticket]:
        return [ticket for ticket, _ in self._inflight.values()]

    def service_time(self, model: str) -> float | None:
        return self._service.get(model)

    def depths(self, model: str, position: int | None = None) -> Depths:
        return Depths(
            model=model,
            model_waiting=len(self._queues.get(model) or ()),
            model_inflight=self._model_inflight[model],
            total_waiting=len(self._waiting),
            total_inflight=len(self._inflight),
            max_per_model=self.limits.queue_max_per_model,
            max_total=self.limits.queue_max_total,
            position=position,
        )

    def has_room(self, model: str, backend: str) -> bool:
        caps = self.limits.caps(backend)
        return (
            (caps.per_model <= 0 or self._model_inflight[model] < caps.per_model)
            and (caps.max_concurrency <= 0 or self._backend_inflight[backend] < caps.max_concurrency)
            and (self.limits.global_cap <= 0 or len(self._inflight) < self.limits.global_cap)
        )

    # --- internals ---------------------------------------------------------------------------

    def _has_room(self, ticket: Ticket) -> bool:
        return self.has_room(ticket.model, ticket.backend)

    def _model_tickets(self, model: str) -> list[Ticket]:
        return [t for t in self._waiting.values() if t.model == model]

    def _enqueue(self, ticket: Ticket) -> None:
        queue = self._queues.get(ticket.model)
        if queue is None:
            queue = self._queues[ticket.model] = ModelQueue()
            self._ring.append(ticket.model)
        queue.push(ticket)
        self._waiting[ticket.id] = ticket

    def _unqueue(self, ticket: Ticket) -> None:
        queue = self._queues[ticket.model]
        queue.remove(ticket)
        del self._waiting[ticket.id]
        if not queue:
            del self._queues[ticket.model]
            self._ring.remove(ticket.model)

    def _grant(self, ticket: Ticket, now: float) -> None:
        self._inflight[ticket.id] = (ticket, now)
        self._model_inflight[ticket.model] += 1
        self._backend_inflight[ticket.backend] += 1

    def _make_room(self, ticket: Ticket, kind: RejectKind, now: float) -> list[Decision] | None:
        """``[]`` if the bound has room, the shed waiter's rejection if one gives way, else ``None``."""
        if kind == "queue_overloaded_model":
            scope, bound = self._model_tickets(ticket.model), self.limits.queue_max_per_model
        else:
            scope, bound = list(self._waiting.values()), self.limits.queue_max_total
        if len(scope) < bound:
            return []
        victim = self._victim(scope, ticket) if bound > 0 else None
        if victim is None:
            return None
        rejection = self.rejection(victim, kind, now, ahead=self._queues[victim.model].position(victim))
        self._unqueue(victim)
        return [Reject(victim.id, rejection)]

    def _victim(self, scope: Iterable[Ticket], newcomer: Ticket) -> Ticket | None:
        """Whom a full queue sheds to take ``newcomer``: a lower-priority waiter, or the newest waiter
        of a client holding at least two more places in the band than the newcomer's client."""
        tickets = list(scope)
        counts = Counter((t.client, t.priority) for t in tickets)
        mine = counts[(newcomer.client, newcomer.priority)]
        candidates = [
            t
            for t in tickets
            if t.priority < newcomer.priority
            or (
                t.priority == newcomer.priority
                and t.client != newcomer.client
                and counts[(t.client, t.priority)] >= mine + 2
            )
        ]
        if not candidates:
            return None
        return min(candidates, key=lambda t: (t.priority, -counts[(t.client, t.priority)], -t.arrived, -t.id))

    def _expire(self, now: float) -> list[Decision]:
        decisions: list[Decision] = []
        if not self._waiting:  # the common case: every call ran at once
            return decisions
        for ticket in [t for t in self._waiting.values() if t.expires <= now]:
            kind: RejectKind = (
                "deadline_exceeded" if ticket.deadline is not None and ticket.deadline <= now else "queue_timeout"
            )
            position = self._queues[ticket.model].position(ticket)
            rejection = self.rejection(ticket, kind, now, ahead=position)
            self._unqueue(ticket)
            decisions.append(Expire(ticket.id, rejection))
        return decisions

    def _pump(self, now: float) -> list[Decision]:
        """Grant waiters while any has room: highest head priority first, models in turn."""
        grants: list[Decision] = []
        while True:
            best: str | None = None
            best_priority = 0
            for model in self._ring:
                queue = self._queues[model]
                head = queue.peek()
                if self._has_room(head) and (best is None or head.priority > best_priority):
                    best, best_priority = model, head.priority
            if best is None:
                return grants
            queue = self._queues[best]
            ticket = queue.pop()
            del self._waiting[ticket.id]
            self._ring.remove(best)
            if queue:
                self._ring.append(best)
            else:
                del self._queues[best]
            self._grant(ticket, now)
            grants.append(Grant(ticket.id, max(now - ticket.arrived, 0.0)))

    def rejection(self, ticket: Ticket, kind: RejectKind, now: float, ahead: int | None = None) -> Rejection:
        estimate = self._estimate(ticket, kind, now, ahead)
        limits = self.limits
        retry_after = int(min(max(1, math.ceil(estimate)), max(1.0, limits.retry_max_sec)))
        return Rejection(
            kind=kind,
            retry_after=retry_after,
            estimate=estimate,
            jitter=limits.jitter_sec,
            depths=self.depths(ticket.model, ahead),
            waited=max(now - ticket.arrived, 0.0),
        )

    def _estimate(self, ticket: Ticket, kind: RejectKind, now: float, ahead: int | None) -> float:
        """Seconds until a retry of ``ticket`` could run: the first in-flight call expected to end
        (by the model's recent service time), plus whole rounds for the tickets ahead of it."""
        fallback = self.limits.retry_fallback_sec
        service = self._service.get(ticket.model, fallback)
        if kind == "queue_overloaded_total":
            running = list(self._inflight.values())
        else:
            running = [(t, g) for t, g in self._inflight.values() if t.model == ticket.model]
            if not running:  # blocked by the backend or global cap: any of those calls frees it
                running = list(self._inflight.values())
        remaining = [max(self._service.get(t.model, fallback) - (now - granted), 0.0) for t, granted in running]
        first = min(remaining, default=0.0)
        if ahead is None:
            ahead = 0 if kind != "deadline_exceeded" else len(self._queues.get(ticket.model) or ())
        return first + (ahead // self._parallelism(ticket)) * service

    def _parallelism(self, ticket: Ticket) -> int:
        caps = self.limits.caps(ticket.backend)
        bounds = [c for c in (caps.per_model, caps.max_concurrency, self.limits.global_cap) if c > 0]
        return min(bounds) if bounds else max(1, self._model_inflight[ticket.model])
