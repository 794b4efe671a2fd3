"""The gateway's state and its services: route a request to candidates, run it on them.

Built in the app's lifespan from the config (or given backends, for tests) and passed down; the
HTTP layer calls it, it calls routing, the cloud policy, failover and backends. It holds no HTTP
types. Running a request: candidates in order (failover), each call billed when its backend is
priced, and — when configured and every local candidate failed — the cloud as a last resort.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from functools import partial
from typing import Any, TypeVar

from local_lattice.admission import Admission
from local_lattice.backends.base import Backend, LoadProgress, Startable
from local_lattice.backends.registry import build_backends
from local_lattice.cloud.billing import Billing
from local_lattice.cloud.cost import BudgetLedger, PriceBook
from local_lattice.cloud.escalation import Decision, Policy, decide_after_failure, decide_up_front
from local_lattice.cloud.specs import Resolver, directory_of, resolve_with_cloud
from local_lattice.config import Config
from local_lattice.engines.defaults import with_default_backends
from local_lattice.errors import LatticeError
from local_lattice.failover import Attempt, BackendTracker, fails_over, open_stream, run_candidates, tracked
from local_lattice.observability.observer import Observer
from local_lattice.preferences import Preferences
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
    ModelInfo,
    ModelKind,
    StreamChunk,
)

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Routed:
    backend: Backend
    model: ModelInfo
    resolution: Resolution

    @property
    def routed_to(self) -> str:
        return f"{self.model.backend}/{self.model.id}"


class Gateway:
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
    ) -> Routed:
        """Resolve ``spec`` (with hints from ``body`` and ``headers``) to candidates; no backend runs.
        For a chat body the escalation policy may put the cloud first (big task, local would reject)."""
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
        chosen = resolution.chosen
        if (
            body is not None
            and endpoint == "chat"
            and self.escalation.decides_up_front
            and not self.cloud.is_cloud(chosen.backend)
        ):
            target = self.escalation.target
            decision = decide_up_front(
                self.escalation,
                body,
                would_reject=self.admission.would_reject(chosen.id, chosen.backend),
                budget_left=target is not None and self.billing.budget.left(target.backend),
            )
            return self._apply(decision, resolution)
        return Routed(self.backends[chosen.backend], chosen, resolution)

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

    async def complete(self, routed: Routed, endpoint: Endpoint, body: JSONObject) -> tuple[Routed, BackendResponse]:
        """Run a whole request on ``routed``'s candidates in order, failing over before the first byte."""
        attempt, answer = await self._run(routed, endpoint, body, self.billing.complete)
        self.tracker.end(attempt.model.backend)
        return self._routed(attempt), answer

    async def stream(
        self, routed: Routed, endpoint: Endpoint, body: JSONObject
    ) -> tuple[Routed, StreamChunk | None, ChunkStream]:
        """Open a stream on the first candidate that yields a first chunk; the rest stream as produced."""

        async def call(backend: Backend, request: BackendRequest) -> tuple[StreamChunk | None, ChunkStream]:
            return await open_stream(self.billing.stream(backend, request))

        attempt, (first, rest) = await self._run(routed, endpoint, body, call)
        name = attempt.model.backend
        return self._routed(attempt), first, tracked(rest, lambda: self.tracker.end(name))

    async def aclose(self) -> None:
        self.admission.aclose()
        for backend in self.backends.values():
            await backend.aclose()
        self.observer.close()
