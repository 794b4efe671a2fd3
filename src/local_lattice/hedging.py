"""Hedging: when the chosen candidate has sent no byte for a while, the next one starts as well; the
first to send a byte wins and every other call is closed at once.

``run_hedged`` runs a resolution's candidates like ``failover.run_candidates`` — a failure before the
first byte starts the next candidate, up to ``attempts`` calls in all — with a timer on top: each time
``HedgePlan.after`` seconds pass without an answer, the next candidate the plan allows (no billed
backend unless allowed) starts alongside, in an admission slot of its own that must be free at once
(``HedgePlan.seat``), else nothing more is hedged. The first answer (for a stream: its first chunk)
ends the race: every other call is cancelled and awaited, so its upstream connection is closed
before the answer goes on; its slot is freed and the time it had run is given to the fleet as a
latency sample. A hedge can only start before any byte is in: once one is, the race is over.

For a call answered whole (not streamed) the first byte is the whole answer.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from local_lattice.admission.tickets import QueueContext
from local_lattice.backends.base import Backend
from local_lattice.errors import BackendUnavailable, InvalidRequest, LatticeError
from local_lattice.failover import Attempt, BackendTracker, ModelListCache, explain, fails_over
from local_lattice.routing.profiles import ProfileBook, apply_generation_defaults
from local_lattice.routing.resolver import Resolution
from local_lattice.types import BackendRequest, Endpoint, JSONObject, ModelInfo

T = TypeVar("T")
Release = Callable[[], None]

HEDGE_HEADER = "x-lattice-hedge-ms"
MAX_HEDGE_MS = 600_000.0


def hedge_delay(value: str) -> float:
    """Seconds from an ``X-Lattice-Hedge-Ms`` value (0 turns hedging off); a 400 for anything else
    than a number of milliseconds from 0 to ten minutes."""
    try:
        millis = float(value.strip())
    except ValueError:
        millis = math.nan
    if not math.isfinite(millis) or not 0 <= millis <= MAX_HEDGE_MS:
        raise InvalidRequest(
            f"X-Lattice-Hedge-Ms must be a number of milliseconds from 0 to {MAX_HEDGE_MS:.0f}, got {value!r}",
            param="X-Lattice-Hedge-Ms",
            code="invalid_header",
        )
    return millis / 1000


@dataclass(frozen=True, slots=True)
class Seat:
    """The request's own admission slot: its queue controls and how to free it (idempotent)."""

    queue: QueueContext
    release: Release


@dataclass(frozen=True, slots=True)
class HedgePlan:
    """When to hedge, to whom, and what to tell the fleet."""

    after: float  # seconds without a first byte
    allowed: Callable[[ModelInfo], bool]  # may a hedge go to this candidate (billing)
    seat: Callable[[ModelInfo], Release | None]  # a slot for a hedge, granted at once, or None
    release: Release  # frees the request's own slot, the first candidate's
    started: Callable[[str], None]  # a hedge started on this backend
    won: Callable[[str], None]  # a hedge on this backend answered first
    lost: Callable[[str, float], None]  # a call on this backend was closed after so many seconds


@dataclass(frozen=True, slots=True)
class Calls(Generic[T]):
    """What the race runs: the backends, the per-attempt settings and the call itself."""

    endpoint: Endpoint
    body: JSONObject
    backends: Mapping[str, Backend]
    tracker: BackendTracker
    profiles: ProfileBook
    prompt_chars: int
    attempts: int
    call: Callable[[Backend, BackendRequest], Awaitable[T]]
    discard: Callable[[T], Awaitable[None]]  # drop an answer that came second


@dataclass(slots=True)
class _Lane:
    model: ModelInfo
    seat: Release
    hedge: bool
    started: float
    clamps: list[str] = field(default_factory=list)


async def _attempt(calls: Calls[T], model: ModelInfo, request: BackendRequest) -> T:
    tracker = calls.tracker
    tracker.begin(model.backend)
    try:
        result = await calls.call(calls.backends[model.backend], request)
    except BaseException:
        tracker.end(model.backend)
        raise
    tracker.succeeded(model.backend)
    return result  # the backend's in-flight count stays raised until the caller ends the work


class _Race(Generic[T]):
    def __init__(self, resolution: Resolution, plan: HedgePlan, calls: Calls[T]) -> None:
        self.resolution = resolution
        self.plan = plan
        self.calls = calls
        self.waiting = [m for m in resolution.candidates if m.backend in calls.backends]
        self.lanes: dict[asyncio.Future[T], _Lane] = {}
        self.notes: list[str] = []
        self.dead: set[str] = set()
        self.last: LatticeError | None = None
        self.tried = 0
        self.last_start = 0.0
        self.hedging = True

    def _find(self, hedge: bool) -> int | None:
        running = {lane.model.backend for lane in self.lanes.values()}
        for index, model in enumerate(self.waiting):
            if model.backend in self.dead:
                continue
            if hedge and (model.backend in running or not self.plan.allowed(model)):
                continue
            return index
        return None

    def _start(self, index: int, seat: Release, hedge: bool) -> None:
        model = self.waiting.pop(index)
        calls = self.calls
        self.tried += 1
        body = dict(calls.body)
        clamps = apply_generation_defaults(body, calls.endpoint, calls.profiles.profile_for(model), calls.prompt_chars)
        task = asyncio.ensure_future(_attempt(calls, model, BackendRequest(calls.endpoint, model.id, body)))
        self.last_start = time.monotonic()
        self.lanes[task] = _Lane(model, seat, hedge, self.last_start, clamps)
        if hedge:
            self.plan.started(model.backend)

    def _hedge_in(self) -> float | None:
        """Seconds until the next hedge is due, or None when no more may start."""
        if not self.hedging or self.tried >= self.calls.attempts:
            return None
        return max(0.0, self.last_start + self.plan.after - time.monotonic())

    def _hedge(self) -> None:
        index = self._find(hedge=True)
        seat = None if index is None else self.plan.seat(self.waiting[index])
        if index is None or seat is None:
            self.hedging = False  # nobody to hedge to, or no free slot: wait for what runs
            return
        self._start(index, seat, hedge=True)

    def _failed(self, lane: _Lane, exc: LatticeError, answered: bool) -> None:
        """A call failed before its first byte: note it, and start the next candidate in its slot."""
        model = lane.model
        self.calls.tracker.failed(model.backend)
        if isinstance(exc, BackendUnavailable) and exc.code == "backend_unavailable":
            self.dead.add(model.backend)
            backend = self.calls.backends[model.backend]
            if isinstance(backend, ModelListCache):
                backend.forget_models()
        self.notes.append(f"{model.backend}/{model.id} failed ({exc.code}), failed over")
        self.last = exc
        index = None if answered or self.tried >= self.calls.attempts else self._find(hedge=False)
        if index is None:
            lane.seat()
        else:
            self._start(index, lane.seat, hedge=False)

    def _settle(self, done: set[asyncio.Future[T]]) -> tuple[_Lane, T] | None:
        """The first success among ``done`` (others that succeeded too go back as losers)."""
        winner: tuple[_Lane, T] | None = None
        for task in [t for t in self.lanes if t in done]:
            lane = self.lanes.pop(task)
            if task.cancelled():
                lane.seat()
                continue
            exc = task.exception()
            if exc is None:
                if winner is None:
                    winner = (lane, task.result())
                else:
                    self.lanes[task] = lane  # closed with the other losers
                continue
            if isinstance(exc, LatticeError) and fails_over(exc):
                self._failed(lane, exc, answered=winner is not None)
                continue
            lane.seat()
            if winner is None:  # the request's own fault (a 400): no other candidate would do better
                raise exc
        return winner

    async def _close_others(self) -> None:
        """Cancel every call still running and wait until each is closed; free their slots."""
        lanes, self.lanes = self.lanes, {}
        for task in lanes:
            task.cancel()
        await asyncio.gather(*lanes, return_exceptions=True)
        for task, lane in lanes.items():
            if not task.cancelled() and task.exception() is None:
                await self.calls.discard(task.result())
                self.calls.tracker.end(lane.model.backend)
            self.plan.lost(lane.model.backend, time.monotonic() - lane.started)
            lane.seat()

    def _won(self, lane: _Lane, result: T) -> tuple[Attempt, T, Release]:
        notes = self.notes
        if lane.hedge:
            self.plan.won(lane.model.backend)
            notes = [*notes, f"hedged to {lane.model.backend} after {self.plan.after * 1000:.0f} ms, it answered first"]
        attempt = Attempt(lane.model, explain(self.resolution, lane.model, notes + lane.clamps))
        return attempt, result, lane.seat

    async def run(self) -> tuple[Attempt, T, Release]:
        first = self._find(hedge=False)
        if first is None:
            raise BackendUnavailable("no backend is available for the resolved candidates")
        self._start(first, self.plan.release, hedge=False)
        try:
            while self.lanes:
                done, _ = await asyncio.wait(self.lanes, timeout=self._hedge_in(), return_when=asyncio.FIRST_COMPLETED)
                if not done:
                    self._hedge()
                    continue
                winner = self._settle(done)
                if winner is not None:
                    await self._close_others()
                    return self._won(*winner)
        except BaseException:
            await self._close_others()
            raise
        if self.last is None:
            raise BackendUnavailable("no backend is available for the resolved candidates")
        if self.notes:
            self.last.headers["X-Model-Resolution"] = explain(
                self.resolution, self.resolution.chosen, self.notes
            ).explanation
        raise self.last


async def run_hedged(resolution: Resolution, plan: HedgePlan, calls: Calls[T]) -> tuple[Attempt, T, Release]:
    """Run ``resolution``'s candidates with hedging; the answer, and the release of the slot it ran
    in (to call when the work ends: for a stream, when it is closed)."""
    return await _Race(resolution, plan, calls).run()
