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
from local_lattice.routing.inventory import Inventory
from local_lattice.routing.resolver import Resolution, resolve
from local_lattice.types import Endpoint, ModelInfo, ModelKind


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

    @classmethod
    def from_config(cls, config: Config) -> Gateway:
        return cls(config, build_backends(config))

    async def start(self) -> None:
        """Let backends that prepare themselves (preloading models) do so before serving."""
        for backend in self.backends.values():
            if isinstance(backend, Startable):
                await backend.start()

    async def route(self, endpoint: Endpoint, spec: Any) -> Routed:
        snapshot = await self.inventory.snapshot()
        kind: ModelKind = "embedding" if endpoint == "embeddings" else "chat"
        if self.config.engines.grab_model and snapshot.models:
            # Grab mode: the one grabbed model answers whatever the request names.
            resolution = Resolution((snapshot.models[0],), explanation=f"grab mode: {snapshot.models[0].id}")
        else:
            resolution = resolve(spec, snapshot.models, kind)
        chosen = resolution.chosen
        return Routed(self.backends[chosen.backend], chosen, resolution)

    async def aclose(self) -> None:
        for backend in self.backends.values():
            await backend.aclose()
