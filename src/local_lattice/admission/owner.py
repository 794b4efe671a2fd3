"""The one owner of admission state on the event loop: it turns calls into scheduler events, applies
the decisions (wakes waiters, arms the one expiry timer) and renders rejections as ``RateLimited``
(429), or ``DeadlineExceeded`` (504) when the request's own deadline is what ran out.

Every method runs synchronously on the loop and mutates state without awaiting, so no lock is
needed: the loop is the owner. Callers hold a ``Waiter``; ``close()`` ends its part exactly once
(a waiter leaves the queue, a granted call frees its slot), also when the caller was cancelled.

With ``shared`` set (replicas sharing a store), a call the local queue granted also takes the
leases of the caps counted across replicas before it runs (``state.caps``); its wait counts as
queue time, and running out of it is the same 429 or 504.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any, Protocol

from local_lattice.admission.controls import QUEUE_HEADERS, PriorityPolicy, context_of
from local_lattice.admission.limits import limits_from, priority_policy
from local_lattice.admission.scheduler import Scheduler
from local_lattice.admission.tickets import (
    Cancelled,
    Decision,
    Grant,
    Limits,
    Outcome,
    QueueContext,
    Rejection,
    RejectKind,
    Ticket,
)
from local_lattice.config import Config
from local_lattice.errors import DeadlineExceeded, RateLimited

RETRY_STRATEGY = "retry_after_with_jitter"
DEFAULT_WAIT_SEC = 20.0
MAX_REMEMBERED_CLIENTS = 1024

_MESSAGES = {
    "queue_overloaded_total": "the gateway's queue is full ({total} waiting)",
    "queue_overloaded_model": "the queue for {model} is full ({depth} waiting)",
    "queue_timeout": "waited {waited:.1f} s in the queue for {model} without a free slot",
    "deadline_exceeded": "the request's deadline passed before {model} could run it",
}


def rejected(rejection: Rejection) -> RateLimited | DeadlineExceeded:
    """A rejection as the error the client sees: a 429 (a 504 when the request's own deadline ran
    out: waiting longer cannot help it) with the original's ``retry{}`` and ``queue{}`` details (our
    field names and its own) and headers, ``Retry-After`` estimated from the queue and the model's
    recent service time."""
    depths = rejection.depths
    message = _MESSAGES[rejection.kind].format(
        total=depths.total_waiting, model=depths.model, depth=depths.model_waiting, waited=rejection.waited
    )
    if rejection.kind == "deadline_exceeded":
        return DeadlineExceeded(message, headers=_headers(rejection), extra=_details(rejection, 504))
    return RateLimited(
        f"{message}; retry after {rejection.retry_after} s",
        retry_after=rejection.retry_after,
        kind=rejection.kind,
        waited=rejection.waited,
        headers=_headers(rejection),
        extra=_details(rejection, 429),
    )


def _headers(rejection: Rejection) -> dict[str, str]:
    depths = rejection.depths
    return {
        "Retry-After": str(rejection.retry_after),
        "X-MLX-Retry-Jitter-Sec": f"{rejection.jitter:g}",
        "X-MLX-Queue-Depth": str(depths.model_waiting),
        "X-MLX-InFlight": str(depths.model_inflight),
        "X-Lattice-Queue-Ms": f"{rejection.waited * 1000:.3f}",
        "X-MLX-Queue-Wait-Ms": str(round(rejection.waited * 1000)),
    }


def _details(rejection: Rejection, status: int) -> dict[str, object]:
    return {
        "retry": {
            "retry_after_sec": rejection.retry_after,
            "jitter_sec": rejection.jitter,
            "strategy": RETRY_STRATEGY,
            "estimated_wait_sec": round(rejection.estimate, 3),
        },
        "queue": {**rejection.depths.as_dict(), **rejection.depths.original(rejection.waited)},
        "status": status,
    }


class SharedSlots(Protocol):
    """Caps counted across replicas (``state.caps.SharedCaps``)."""

    def lease_for(self, backend: str, model: str) -> Any: ...

    async def acquire(self, lease: Any, until: float, patience: float | None, clock: Callable[[], float]) -> bool: ...

    def release(self, lease: Any) -> None: ...


class Waiter:
    """One caller's ticket. ``wait()`` returns the grant or raises the rejection; ``close()`` must
    follow (``Admission.admit`` does both)."""

    def __init__(self, owner: Admission, ticket: Ticket, outcome: asyncio.Future[Outcome], lease: Any = None) -> None:
        self.ticket = ticket
        self._owner = owner
        self._outcome = outcome
        self._closed = False
        self._lease = lease  # the shared caps' lease still to take, if any apply

    @property
    def granted(self) -> bool:
        """Granted here, and holding the shared leases if any caps are shared."""
        return self.locally_granted and (self._lease is None or self._lease.held)

    @property
    def locally_granted(self) -> bool:
        return self._outcome.done() and isinstance(self._outcome.result(), Grant)

    @property
    def decided(self) -> bool:
        return self._outcome.done()

    def position(self) -> int | None:
        return self._owner.scheduler.position(self.ticket.id)

    async def wait(self, patience: float | None = None) -> Grant | None:
        """The grant, or ``None`` if ``patience`` seconds passed first. A cancelled caller leaves the queue."""
        if not self._outcome.done():
            try:
                done, _ = await asyncio.wait({self._outcome}, timeout=patience)
            except asyncio.CancelledError:
                self.close()
                raise
            if not done:
                return None
        outcome = self._outcome.result()
        if isinstance(outcome, Grant):
            lease = self._lease
            if lease is None or lease.held:
                return outcome
            return await self._shared(outcome, lease, patience)
        self._closed = True
        raise rejected(outcome.rejection)

    async def _shared(self, grant: Grant, lease: Any, patience: float | None) -> Grant | None:
        owner = self._owner
        shared = owner.shared
        assert shared is not None
        try:
            if not await shared.acquire(lease, self.ticket.expires, patience, owner.clock):
                return None
        except TimeoutError:
            now = owner.clock()
            late = self.ticket.deadline is not None and self.ticket.deadline <= now
            kind: RejectKind = "deadline_exceeded" if late else "queue_timeout"
            raise rejected(owner.scheduler.rejection(self.ticket, kind, now)) from None
        return replace(grant, waited=max(owner.clock() - self.ticket.arrived, grant.waited))

    def close(self) -> None:
        """End this ticket's part: leave the queue, or free the slot (and its shared leases). Idempotent."""
        if self._closed:
            return
        self._closed = True
        if self._lease is not None:
            assert self._owner.shared is not None
            self._owner.shared.release(self._lease)
        if not self._outcome.done() or isinstance(self._outcome.result(), Grant):
            self._owner.finish(self.ticket.id)


class Admitted:
    """The ``async with`` of ``Admission.admit``: enter, wait for the grant, close on the way out
    (a class rather than a generator-based context manager: one is made per model call)."""

    __slots__ = ("_args", "_owner", "_waiter")

    def __init__(self, owner: Admission, model: str, backend: str, context: QueueContext) -> None:
        self._owner = owner
        self._args = (model, backend, context)
        self._waiter: Waiter | None = None

    async def __aenter__(self) -> Grant:
        waiter = self._waiter = self._owner.enter(*self._args)
        try:
            grant = await waiter.wait()
        except BaseException:
            waiter.close()
            raise
        assert grant is not None
        return grant

    async def __aexit__(self, *exc: object) -> None:
        if self._waiter is not None:
            self._waiter.close()

    def close(self) -> None:
        """Free the slot before the block ends (a hedge answered first elsewhere); idempotent."""
        if self._waiter is not None:
            self._waiter.close()


class Admission:
    def __init__(
        self,
        limits: Limits,
        *,
        default_wait: float = DEFAULT_WAIT_SEC,
        policy: PriorityPolicy | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.scheduler = Scheduler(limits)
        self.default_wait = default_wait
        self.policy = policy or PriorityPolicy()
        self.clock = clock
        self.wall_clock = wall_clock
        self._ids = itertools.count(1)
        self._outcomes: dict[int, asyncio.Future[Outcome]] = {}
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None
        self._plain: dict[tuple[str | None, str | None], QueueContext] = {}
        self.shared: SharedSlots | None = None  # caps counted across replicas, when a store is set

    @classmethod
    def from_config(cls, config: Config) -> Admission:
        return cls(
            limits_from(config),
            default_wait=config.admission.queue_wait_timeout_sec,
            policy=priority_policy(config.admission),
        )

    def context(self, body_queue: Any, headers: Mapping[str, str]) -> QueueContext:
        """A request's ``QueueContext`` from its body ``queue{}`` and headers (lower-case keys).
        Raises ``InvalidRequest`` for negative or non-numeric waits.

        Most requests ask for nothing: their context is the default one of their client, kept per
        credential (a few per deployment) so the key is not hashed again on every request."""
        if not body_queue and QUEUE_HEADERS.isdisjoint(headers):
            credential = (headers.get("x-api-key"), headers.get("authorization"))
            found = self._plain.get(credential)
            if found is None:
                if len(self._plain) >= MAX_REMEMBERED_CLIENTS:
                    self._plain.clear()
                found = self._plain[credential] = context_of(None, headers, policy=self.policy, now=0.0, wall_now=0.0)
            return found
        return context_of(body_queue, headers, policy=self.policy, now=self.clock(), wall_now=self.wall_clock())

    def enter(self, model: str, backend: str, context: QueueContext) -> Waiter:
        """Ask to run one call of ``model`` on ``backend``. Raises the rejection if turned away at
        once (no byte has been written yet, so the client gets a plain 429)."""
        now = self.clock()
        wait = self.default_wait if context.max_wait is None else context.max_wait
        ticket = Ticket(
            id=next(self._ids),
            model=f"{backend}/{model}",
            backend=backend,
            client=context.client,
            priority=context.priority,
            arrived=now,
            wait_until=now + wait,
            deadline=context.deadline,
        )
        decisions = self.scheduler.arrive(ticket, now)
        outcome: asyncio.Future[Outcome] = asyncio.get_running_loop().create_future()
        lease = None if self.shared is None else self.shared.lease_for(backend, model)
        if len(decisions) == 1 and decisions[0].ticket_id == ticket.id and isinstance(decisions[0], Grant):
            # Granted at once and nothing else changed: no waiter to wake, no timer to move.
            outcome.set_result(decisions[0])
            return Waiter(self, ticket, outcome, lease)
        self._outcomes[ticket.id] = outcome
        self._apply(decisions)
        waiter = Waiter(self, ticket, outcome, lease)
        if outcome.done() and not waiter.locally_granted:
            waiter.close()
            result = outcome.result()
            assert not isinstance(result, Grant)
            raise rejected(result.rejection)
        return waiter

    def admit(self, model: str, backend: str, context: QueueContext) -> Admitted:
        """``async with admission.admit(model, backend, ctx) as grant:`` runs the body holding a slot."""
        return Admitted(self, model, backend, context)

    def finish(self, ticket_id: int) -> None:
        """A waiter gave up or a granted call ended."""
        self._outcomes.pop(ticket_id, None)
        decisions = self.scheduler.cancel(ticket_id, self.clock())
        if decisions:  # none: nobody waits or expired, so no waiter to wake and no timer to move
            self._apply(decisions)

    def poke(self) -> None:
        """Let time pass: expire waiters whose budget ran out (the timer calls this; tests may too)."""
        if self._timer is not None:
            self._timer.cancel()
        self._timer = None
        self._timer_at = None
        self._apply(self.scheduler.tick(self.clock()))

    def would_reject(self, model: str, backend: str) -> bool:
        """Would a new call of ``model`` be turned away now? (Its queue, or all queues, are full;
        anyone waiting means no slot is free.) Lets the cloud policy spill before a 429."""
        key = f"{backend}/{model}"
        limits = self.scheduler.limits
        total = per_model = 0
        for ticket in self.scheduler.waiting():
            total += 1
            per_model += ticket.model == key
        return per_model >= limits.queue_max_per_model or total >= limits.queue_max_total

    def snapshot(self) -> dict[str, Any]:
        """Queue depth and in-flight calls per model, for ``/healthz``."""
        scheduler = self.scheduler
        models: dict[str, dict[str, Any]] = {}
        for ticket in scheduler.waiting():
            models.setdefault(ticket.model, {"waiting": 0, "inflight": 0})["waiting"] += 1
        for ticket in scheduler.inflight():
            models.setdefault(ticket.model, {"waiting": 0, "inflight": 0})["inflight"] += 1
        for model, entry in models.items():
            service = scheduler.service_time(model)
            entry["service_sec"] = None if service is None else round(service, 3)
        limits = scheduler.limits
        return {
            "waiting": sum(m["waiting"] for m in models.values()),
            "inflight": sum(m["inflight"] for m in models.values()),
            "max_parallel_model_calls": limits.global_cap or None,
            "queue_max_per_model": limits.queue_max_per_model,
            "queue_max_total": limits.queue_max_total,
            "models": models,
        }

    def aclose(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _apply(self, decisions: list[Decision]) -> None:
        for decision in decisions:
            if isinstance(decision, Cancelled):
                self._outcomes.pop(decision.ticket_id, None)
                continue
            outcome = self._outcomes.get(decision.ticket_id)
            if outcome is None or outcome.done():
                # Nobody is left to use this grant (cannot happen while waiters close on cancel,
                # but a slot must never leak).
                if isinstance(decision, Grant):
                    self._apply(self.scheduler.release(decision.ticket_id, self.clock()))
                continue
            if not isinstance(decision, Grant):
                self._outcomes.pop(decision.ticket_id, None)
            outcome.set_result(decision)
        self._arm()

    def _arm(self) -> None:
        when = self.scheduler.next_expiry()
        if when == self._timer_at:
            return
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._timer_at = when
        if when is not None:
            delay = max(when - self.clock(), 0.0)
            self._timer = asyncio.get_running_loop().call_later(delay, self.poke)
