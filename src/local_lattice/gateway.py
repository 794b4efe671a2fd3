"""The gateway's state and its one service: route a request to a backend that can serve it.

Built in the app's lifespan from the config (or given backends, for tests) and passed down; the
HTTP layer calls it, it calls routing and backends. It holds no HTTP types.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from local_lattice.backends.base import Backend, Startable
from local_lattice.backends.registry import build_backends
from local_lattice.config import Config
from local_lattice.failover import BackendTracker, open_stream, run_candidates, tracked
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
        routing = config.routing
        self.tracker = BackendTracker(routing.failure_threshold, routing.cooldown_seconds)
        # The dashboard's "runtime default": auto-pick tries it before DEFAULT_MODEL.
        self.runtime_default = ""
        self._indexes: tuple[InventorySnapshot | None, dict[ModelKind, ModelIndex]] = (None, {})

    @classmethod
    def from_config(cls, config: Config) -> Gateway:
        return cls(config, build_backends(config))

    async def start(self) -> None:
        """Let backends that prepare themselves (preloading models) do so before serving."""
        for backend in self.backends.values():
            if isinstance(backend, Startable):
                await backend.start()

    def index(self, snapshot: InventorySnapshot, kind: ModelKind) -> ModelIndex:
        """The search index of ``snapshot`` (built once per snapshot and kind)."""
        cached_for, indexes = self._indexes
        if cached_for is not snapshot:
            indexes = {}
            self._indexes = (snapshot, indexes)
        found = indexes.get(kind)
        if found is None:
            found = indexes[kind] = ModelIndex.build(snapshot.models, kind)
        return found

    async def route(
        self,
        endpoint: Endpoint,
        spec: Any,
        *,
        body: JSONObject | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Routed:
        """Resolve ``spec`` (with hints from ``body`` and ``headers``) to candidates; no backend runs."""
        if self.tracker.cooling_until:
            await self.tracker.readmit(self.backends)
        snapshot = await self.inventory.snapshot()
        kind: ModelKind = "embedding" if endpoint == "embeddings" else "chat"
        if self.config.engines.grab_model and snapshot.models:
            # Grab mode: the one grabbed model answers whatever the request names.
            resolution = Resolution((snapshot.models[0],), explanation=f"grab mode: {snapshot.models[0].id}")
            return Routed(self.backends[snapshot.models[0].backend], snapshot.models[0], resolution)
        hints = infer_hints(endpoint, body or {}, headers or {}, self.policy.long_prompt_chars) if body else Hints()
        resolution = resolve(
            spec,
            snapshot.models,
            kind,
            policy=self.policy,
            hints=hints,
            backends=self.tracker.status(list(self.backends)),
            runtime_default=self.runtime_default,
            index=self.index(snapshot, kind),
        )
        chosen = resolution.chosen
        return Routed(self.backends[chosen.backend], chosen, resolution)

    async def complete(self, routed: Routed, endpoint: Endpoint, body: JSONObject) -> tuple[Routed, BackendResponse]:
        """Run a whole request on ``routed``'s candidates in order, failing over before the first byte."""

        async def call(backend: Backend, request: BackendRequest) -> BackendResponse:
            return await backend.complete(request)

        attempt, answer = await run_candidates(routed.resolution, call=call, **self._run_args(endpoint, body))
        self.tracker.end(attempt.model.backend)
        return Routed(self.backends[attempt.model.backend], attempt.model, attempt.resolution), answer

    async def stream(
        self, routed: Routed, endpoint: Endpoint, body: JSONObject
    ) -> tuple[Routed, StreamChunk | None, ChunkStream]:
        """Open a stream on the first candidate that yields a first chunk; the rest stream as produced."""
        attempt, (first, rest) = await run_candidates(
            routed.resolution, call=open_stream, **self._run_args(endpoint, body)
        )
        name = attempt.model.backend
        chosen = Routed(self.backends[name], attempt.model, attempt.resolution)
        return chosen, first, tracked(rest, lambda: self.tracker.end(name))

    def _run_args(self, endpoint: Endpoint, body: JSONObject) -> dict[str, Any]:
        return {
            "endpoint": endpoint,
            "body": body,
            "backends": self.backends,
            "tracker": self.tracker,
            "profiles": self.policy.profiles,
            "prompt_chars": prompt_chars(body),
            "attempts": self.config.routing.fallback_attempts,
        }

    async def aclose(self) -> None:
        for backend in self.backends.values():
            await backend.aclose()
