"""The inventory: every model of every backend, gathered concurrently and cached briefly.

Owns the merged model list and which backends answered the last refresh. It never raises for a
failing backend: that backend simply contributes nothing and is reported unhealthy.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

from local_lattice.backends.base import Backend
from local_lattice.errors import LatticeError
from local_lattice.types import ModelInfo


@dataclass(frozen=True, slots=True)
class InventorySnapshot:
    models: tuple[ModelInfo, ...]
    errors: Mapping[str, str] = field(default_factory=dict)
    taken_at: float = 0.0

    def ids(self) -> list[str]:
        return sorted({m.id for m in self.models})


class Inventory:
    def __init__(self, backends: Mapping[str, Backend], ttl: float = 2.0) -> None:
        self.backends = backends
        self.ttl = ttl
        self._snapshot = InventorySnapshot(models=(), taken_at=-1e18)
        self._lock = asyncio.Lock()

    async def snapshot(self, *, fresh: bool = False) -> InventorySnapshot:
        if not fresh and time.monotonic() - self._snapshot.taken_at < self.ttl:
            return self._snapshot
        async with self._lock:
            if not fresh and time.monotonic() - self._snapshot.taken_at < self.ttl:
                return self._snapshot
            self._snapshot = await self._gather()
            return self._snapshot

    @property
    def last(self) -> InventorySnapshot:
        """The snapshot taken last, however old (what the gateway knew before a refresh)."""
        return self._snapshot

    def invalidate(self) -> None:
        self._snapshot = InventorySnapshot(models=self._snapshot.models, errors=self._snapshot.errors, taken_at=-1e18)

    async def _gather(self) -> InventorySnapshot:
        names = list(self.backends)
        results = await asyncio.gather(*(self.backends[name].models() for name in names), return_exceptions=True)
        models: list[ModelInfo] = []
        errors: dict[str, str] = {}
        for name, result in zip(names, results, strict=True):
            if isinstance(result, LatticeError):
                errors[name] = result.message
            elif isinstance(result, BaseException):
                errors[name] = f"{type(result).__name__}: {result}"
            else:
                models.extend(result)
        return InventorySnapshot(models=tuple(models), errors=errors, taken_at=time.monotonic())
