"""The per-model in-flight cap for in-process engines (``MLX_PER_MODEL_INFLIGHT_CAP``).

A plain FIFO semaphore per model: the simplest stand-in for a real admission layer, kept in this
one module so it can be replaced without touching the engines. Cap 0 means unlimited.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable


class InflightGate:
    def __init__(self, cap: int) -> None:
        self.cap = cap
        self._slots: dict[str, asyncio.Semaphore] = {}
        self._active: dict[str, int] = {}

    async def enter(self, key: str) -> Callable[[], None]:
        """Wait for a slot for ``key``; returns an idempotent release callable."""
        if self.cap <= 0:
            return lambda: None
        slot = self._slots.setdefault(key, asyncio.Semaphore(self.cap))
        await slot.acquire()
        self._active[key] = self._active.get(key, 0) + 1
        released = False

        def release() -> None:
            nonlocal released
            if not released:
                released = True
                self._active[key] -= 1
                slot.release()

        return release

    def active(self) -> dict[str, int]:
        return {k: v for k, v in self._active.items() if v}
