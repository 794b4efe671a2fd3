"""The gateway's state and its services: route a request to candidates, run it on them.

Built in the app's lifespan from the config (or given backends, for tests) and passed down; the
HTTP layer calls it, it calls routing, the cloud policy, failover and backends. It holds no HTTP
types. Running a request: candidates in order (failover), each call billed when its backend is
priced, and — when configured and every local candidate failed — the cloud as a last resort.
Copies of one id on several backends are ordered by the fleet (``routing.fleet_state``: affinity,
least-loaded, round robin), timed for it and, when asked, hedged (``hedging``).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, replace
from functools import partial
from typing import Any, TypeVar

from local_lattice.admission import Admission, QueueContext
from local_lattice.backends.base import Backend, Startable
from local_lattice.backends.registry import build_backends
from local_lattice.cloud.billing import Billing
from local_lattice.cloud.cost import BudgetLedger, PriceBook
from local_lattice.cloud.escalation import Decision, Policy, decide_after_failure, decide_up_front
from local_lattice.cloud.specs import Resolver, directory_of, resolve_with_cloud
from local_lattice.config import Config
from local_lattice.engines.defaults import with_default_backends
from local_lattice.errors import LatticeError, RateLimited
from local_lattice.failover import Attempt, BackendTracker, fails_over, open_stream, run_candidates, tracked
from local_lattice.hedging import HEDGE_HEADER, Calls, HedgePlan, Release, Seat, hedge_delay, run_hedged
from local_lattice.observability.observer import Observer
from local_lattice.preferences import Preferences
from local_lattice.probes import HealthChecks
from local_lattice.routing.fleet_state import Fleet, Live, Placement
from local_lattice.routing.hints import Hints, infer_hints, prompt_chars
from local_lattice.routing.index import ModelIndex
from local_lattice.routing.inventory import Inventory, InventorySnapshot
from local_lattice.routing.policy import build_policy
from local_lattice.routing.resolver import Resolution, resolve
from local_lattice.types import (
    BackendRequest,
    BackendResponse,
    ChunkStream,
    Endpoint,
    JSONObject,
    LoadProgress,
    ModelInfo,
    ModelKind,
    StreamChunk,
)

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Routed:
    """Where a request goes: the backend, the model chosen and the resolution that chose it."""

    backend: Backend
    model: ModelInfo
    resolution: Resolution
    placement: Placement | None = None  # how the fleet ordered copies of the id, if it did
    hedge_after: float = 0.0  # seconds without a first byte before the next candidate starts (0: never)

    @property
    def routed_to(self) -> str:
        return f"{self.model.backend}/{self.model.id}"


class Gateway:
    """The services one running gateway shares, built from its config: backends, inventory, routing
    policy, failure tracker, observer, preferences, cloud escalation, billing and admission.

    ``route`` resolves a request to candidates; ``complete`` and ``stream`` run it with failover
    (and cloud fallback) and return the route that answered. The HTTP layer calls these."""

    def __init__(self, config: Config, backends: Mapping[str, Backend]) -> None:
        self.config = config
        self.backends = dict(backends)
        self.inventory = Inventory(self.backends)
        self.policy = build_policy(config)
        # One item of a list naming a cloud: a miss moves on to the next item instead of falling back.
        self.item_policy = replace(self.policy, on_model_miss="error")
        routing = config.routing
        self.tracker = BackendTracker(routing.failure_threshold, routing.cooldown_seconds)
        self._indexes: tuple[InventorySnapshot | None, dict[ModelKind, ModelIndex]] = (None, {})
        self.observer = Observer(config)
        self.preferences = Preferences()
        self.cloud = directory_of(config)
        self.escalation = Policy.of(config, self.cloud)
        self.billing = Billing(PriceBook.of(config), BudgetLedger.of(config))
        # Admission's answer to "would you reject this model now?" (for spilling to the cloud).
        self.admission = Admission.from_config(config)
        self.fleet = Fleet.of(routing)
        self.hedge_after = routing.hedge_after_ms / 1000
        every = routing.health_check_seconds  # a check never outlasts its interval
        self.health_checks = HealthChecks(self.tracker, self.backends, self.fleet.members, every, min(5.0, every))
        self.observer.metrics.watch_fleet(lambda: self.fleet.rows(self.tracker.in_flight))
        # The shared store's state for /healthz, when limits are shared across replicas.
        self.shared_state: Callable[[], JSONObject] | None = None
        self.on_preferences: Callable[[Preferences], None] | None = None

    def set_preferences(self, preferences: Preferences) -> None:
        """Take the dashboard's new preferences (replicas sharing a store are told too)."""
        self.preferences = preferences
        if self.on_preferences is not None:
            self.on_preferences(preferences)

    @property
    def runtime_default(self) -> str:
        """The dashboard's default model: auto-pick tries it before DEFAULT_MODEL."""
        return self.preferences.default_model or ""

    @classmethod
    def from_config(cls, config: Config) -> Gateway:
        config = with_default_backends(config)
        return cls(config, build_backends(config))

    async def start(self, progress: LoadProgress | None = None) -> None:
        """Let backends that prepare themselves (preloading models) do so before serving."""
        for backend in self.backends.values():
            if isinstance(backend, Startable):
                await backend.start(progress)
        self.health_checks.start()

    def index(self, snapshot: InventorySnapshot, kind: ModelKind) -> ModelIndex:
        """The search index of ``snapshot``'s local models (built once per snapshot and kind).
        Cloud models are reached only by name (``anthropic:<model>``) or by escalation."""
        cached_for, indexes = self._indexes
        if cached_for is not snapshot:
            indexes = {}
            self._indexes = (snapshot, indexes)
        found = indexes.get(kind)
        if found is None:
            local = [m for m in snapshot.models if not self.cloud.is_cloud(m.backend)]
            found = indexes[kind] = ModelIndex.build(local, kind)
        return found

    async def route(
        self,
        endpoint: Endpoint,
        spec: Any,
        *,
        body: JSONObject | None = None,
        headers: Mapping[str, str] | None = None,
        dry_run: bool = False,
    ) -> Routed:
        """Resolve ``spec`` (with hints from ``body`` and ``headers``) to candidates; no backend runs.
        For a chat body the escalation policy may put the cloud first (big task, local would reject).
        ``dry_run``: the fleet decides as it would but remembers nothing."""
        if self.tracker.cooling_until:
            await self.tracker.readmit(self.backends)
        snapshot = await self.inventory.snapshot()
        kind: ModelKind = "embedding" if endpoint == "embeddings" else "chat"
        if self.config.engines.grab_model and snapshot.models:
            # Grab mode: the one grabbed model answers whatever the request names.
            resolution = Resolution((snapshot.models[0],), explanation=f"grab mode: {snapshot.models[0].id}")
            return Routed(self.backends[snapshot.models[0].backend], snapshot.models[0], resolution)
        hints = infer_hints(endpoint, body or {}, headers or {}, self.policy.long_prompt_chars) if body else Hints()
        index = self.index(snapshot, kind)
        # The backends' live status only matters to order copies of an id, or to skip cooling ones.
        tracker = self.tracker
        live = index.any_copies or tracker.cooling_until
        local = partial(
            resolve,
            policy=self.policy,
            hints=hints,
            backends=tracker.status(list(self.backends)) if live else None,
            runtime_default=self.runtime_default,
            index=index,
        )

        def item() -> Resolver:
            """For the items of a list naming a cloud: resolved without falling back (made only then)."""
            return partial(local, policy=self.item_policy)

        resolution = resolve_with_cloud(spec, snapshot.models, kind, self.cloud, local, item)  # the index decides
        placement = None
        if index.any_copies or self.fleet.ids:
            now = Live(tracker.in_flight, tracker.failures, tracker.recovered_at, tracker.clock())
            resolution, placement = self.fleet.arrange(
                resolution, endpoint, body, headers or {}, now, record=not dry_run
            )
        hedge_after = self.hedge_after
        if headers is not None and (asked := headers.get(HEDGE_HEADER)) is not None:
            hedge_after = hedge_delay(asked)
        chosen = resolution.chosen
        up_front = endpoint == "chat" and self.escalation.decides_up_front
        if body is not None and up_front and not self.cloud.is_cloud(chosen.backend):
            return self._apply(self._up_front(body, chosen), resolution)
        return Routed(self.backends[chosen.backend], chosen, resolution, placement, hedge_after)

    def _up_front(self, body: JSONObject, chosen: ModelInfo) -> Decision:
        """The escalation policy's decision before any local call: stay, or go to the cloud now."""
        target = self.escalation.target
        return decide_up_front(
            self.escalation,
            body,
            would_reject=self.admission.would_reject(chosen.id, chosen.backend),
            budget_left=target is not None and self.billing.budget.left(target.backend),
        )

    def _apply(self, decision: Decision, resolution: Resolution | None) -> Routed:
        if decision.target is None:
            assert resolution is not None
            explained = " ; ".join(p for p in (resolution.explanation, decision.reason) if p)
            chosen = resolution.chosen
            return Routed(self.backends[chosen.backend], chosen, replace(resolution, explanation=explained))
        cloud = ModelInfo(id=decision.target.model, backend=decision.target.backend, supports_tools=True)
        local = resolution.candidates if resolution is not None else ()
        escalated = Resolution(candidates=(cloud, *local), explanation=decision.reason)
        return Routed(self.backends[cloud.backend], cloud, escalated)

    def _cloud_fallback(self, exc: LatticeError, routed: Routed, endpoint: Endpoint) -> Routed | None:
        """The cloud route when every local candidate failed and the policy falls back, else None."""
        if endpoint != "chat" or not fails_over(exc):
            return None
        if any(self.cloud.is_cloud(m.backend) for m in routed.resolution.candidates):
            return None
        target = self.escalation.target
        budget_left = target is not None and self.billing.budget.left(target.backend)
        decision = decide_after_failure(self.escalation, exc.message, budget_left=budget_left)
        if not decision.escalate:
            return None
        fallback = self._apply(decision, None)
        tried = exc.headers.get("X-Model-Resolution") or f"{routed.routed_to} failed ({exc.code})"
        explained = f"{tried} ; {fallback.resolution.explanation}"
        return replace(fallback, resolution=replace(fallback.resolution, explanation=explained))

    def _billed(self, model: ModelInfo) -> bool:
        return self.cloud.is_cloud(model.backend) or self.billing.prices.price(model.backend, model.id) is not None

    def _hedgeable(self, model: ModelInfo) -> bool:
        return self.config.routing.hedge_billed or not self._billed(model)

    def _hedge_seat(self, queue: QueueContext, model: ModelInfo) -> Release | None:
        """An admission slot for a hedge on ``model``, if one is free this moment."""
        try:
            waiter = self.admission.enter(model.id, model.backend, queue)
        except RateLimited:
            return None
        if waiter.granted:
            return waiter.close
        waiter.close()
        return None

    def _hedge_plan(self, routed: Routed, seat: Seat | None) -> HedgePlan | None:
        resolution = routed.resolution
        if routed.hedge_after <= 0 or seat is None or len(resolution.candidates) < 2:
            return None
        if not self._hedgeable(resolution.chosen):
            return None
        fleet = self.fleet
        return HedgePlan(
            routed.hedge_after,
            self._hedgeable,
            partial(self._hedge_seat, seat.queue),
            seat.release,
            fleet.hedge_started,
            fleet.hedge_won,
            fleet.answered,
        )

    def _timed(self, call: Callable[[Backend, BackendRequest], Awaitable[T]], placement: Placement) -> Any:
        """``call``, telling the fleet how long each backend took to its first byte (and passing the
        session on to backends that keep a prompt cache per session)."""
        fleet, clock = self.fleet, time.monotonic
        session = placement.session.hex if placement.session is not None else None

        async def timed(backend: Backend, request: BackendRequest) -> T:
            request.session = session
            started = clock()
            result = await call(backend, request)
            fleet.answered(backend.name, clock() - started)
            return result

        return timed

    async def _run_routed(
        self,
        routed: Routed,
        endpoint: Endpoint,
        body: JSONObject,
        call: Callable[[Backend, BackendRequest], Any],
        seat: Seat | None = None,
        discard: Callable[[Any], Awaitable[None]] | None = None,
    ) -> tuple[Attempt, Any, Release]:
        if routed.placement is not None:
            call = self._timed(call, routed.placement)
        plan = self._hedge_plan(routed, seat) if seat is not None else None
        if plan is not None:
            calls = Calls(
                endpoint, body, self.backends, self.tracker, self.policy.profiles, prompt_chars(body),
                self.config.routing.fallback_attempts, call, discard or _nothing,
            )  # fmt: skip
            try:
                return await run_hedged(routed.resolution, plan, calls)
            except LatticeError as exc:
                cloud = self._cloud_fallback(exc, routed, endpoint)
                if cloud is None:
                    raise
                return (*await self._run(cloud, endpoint, body, call), _no_release)
        return (*await self._run(routed, endpoint, body, call), _no_release)

    async def _run(
        self,
        routed: Routed,
        endpoint: Endpoint,
        body: JSONObject,
        call: Callable[[Backend, BackendRequest], Any],
    ) -> tuple[Attempt, Any]:
        args: dict[str, Any] = {
            "endpoint": endpoint,
            "body": body,
            "backends": self.backends,
            "tracker": self.tracker,
            "profiles": self.policy.profiles,
            "prompt_chars": prompt_chars(body),
            "attempts": self.config.routing.fallback_attempts,
        }
        try:
            return await run_candidates(routed.resolution, call=call, **args)
        except LatticeError as exc:
            cloud = self._cloud_fallback(exc, routed, endpoint)
            if cloud is None:
                raise
            return await run_candidates(cloud.resolution, call=call, **args)

    def _routed(self, attempt: Attempt) -> Routed:
        return Routed(self.backends[attempt.model.backend], attempt.model, attempt.resolution)

    async def complete(
        self, routed: Routed, endpoint: Endpoint, body: JSONObject, seat: Seat | None = None
    ) -> tuple[Routed, BackendResponse]:
        """Run a whole request on ``routed``'s candidates in order, failing over before the first byte
        (and hedging, given the request's admission ``seat``, when ``routed`` asks for it)."""
        attempt, answer, release = await self._run_routed(routed, endpoint, body, self.billing.complete, seat)
        self.tracker.end(attempt.model.backend)
        release()
        return self._routed(attempt), answer

    async def stream(
        self, routed: Routed, endpoint: Endpoint, body: JSONObject, seat: Seat | None = None
    ) -> tuple[Routed, StreamChunk | None, ChunkStream]:
        """Open a stream on the first candidate that yields a first chunk; the rest stream as produced."""

        async def call(backend: Backend, request: BackendRequest) -> tuple[StreamChunk | None, ChunkStream]:
            return await open_stream(self.billing.stream(backend, request))

        attempt, (first, rest), release = await self._run_routed(routed, endpoint, body, call, seat, _close_stream)
        name, tracker = attempt.model.backend, self.tracker

        def ended() -> None:
            tracker.end(name)
            release()

        return self._routed(attempt), first, tracked(rest, ended)

    async def aclose(self) -> None:
        await self.health_checks.aclose()
        self.admission.aclose()
        for backend in self.backends.values():
            await backend.aclose()
        self.observer.close()


def _no_release() -> None:
    return None


async def _nothing(result: Any) -> None:
    return None


async def _close_stream(opened: tuple[StreamChunk | None, ChunkStream]) -> None:
    await opened[1].aclose()
