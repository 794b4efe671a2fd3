"""The inventory: every model of every backend, gathered concurrently and cached briefly.

Owns the merged model list and which backends answered the last refresh. It never raises for a
failing backend: that backend simply contributes nothing and is reported unhealthy.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

from local_lattice.backends.base import Backend, Resident
from local_lattice.errors import LatticeError
from local_lattice.types import ModelInfo


@dataclass(frozen=True, slots=True)
class InventorySnapshot:
    """The models every backend listed at ``taken_at``, and the errors of those that failed."""

    models: tuple[ModelInfo, ...]
    errors: Mapping[str, str] = field(default_factory=dict)
    taken_at: float = 0.0
    residency: int = 0  # the in-process engines' load/unload count when it was taken

    def ids(self) -> list[str]:
        return sorted({m.id for m in self.models})


class Inventory:
    """The backends' model lists, gathered concurrently and cached ``ttl`` seconds (see the module)."""

    def __init__(self, backends: Mapping[str, Backend], ttl: float = 2.0) -> None:
        self.backends = backends
        self.ttl = ttl
        self._snapshot = InventorySnapshot(models=(), taken_at=-1e18)
        self._lock = asyncio.Lock()
        # A model loaded or unloaded in process shows at once, not a ``ttl`` later.
        self._resident = [b for b in backends.values() if isinstance(b, Resident)]

    def _current(self) -> bool:
        snapshot = self._snapshot
        if time.monotonic() - snapshot.taken_at >= self.ttl:
            return False
        return not self._resident or sum(b.residency for b in self._resident) == snapshot.residency

    async def snapshot(self, *, fresh: bool = False) -> InventorySnapshot:
        if not fresh and self._current():
            return self._snapshot
        async with self._lock:
            if not fresh and self._current():
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
        residency = sum(b.residency for b in self._resident)
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
        return InventorySnapshot(tuple(models), errors, time.monotonic(), residency)
