"""Model residency shared by the in-process engines: which models are loaded, and for how long.

Invariants (all state lives on the event loop thread; loads and closes are awaited, never run here):
- At most ``max_models`` models are resident, and their summed file sizes stay within the memory
  budget when one is set. Room is made by evicting the least recently used *unpinned* model.
- Every inference holds a ``Lease`` (a pin). A pinned model is never evicted; when room is needed
  and every resident model is pinned, the least recently used one is marked draining: new requests
  for it wait, and it is evicted as soon as its last lease ends (so alternating requests make
  progress instead of starving).
- An unload of a pinned model is deferred until its last lease ends.
- One load at a time (a global lock: two loads on the same cores only slow each other down),
  so a model is never loaded twice concurrently. Load errors are remembered per model until a
  later load of that model succeeds.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, Literal, TypeVar

from local_lattice.engines.failures import describe_load_failure
from local_lattice.errors import BackendUnavailable, LatticeError

log = logging.getLogger("lattice.engines")

H = TypeVar("H")
UnloadResult = Literal["dropped", "deferred", "absent"]


@dataclass(frozen=True)
class LoadSpec(Generic[H]):
    """How to bring one model in and out of memory. ``key`` is unique across engines."""

    key: str
    size_bytes: int
    open: Callable[[], Awaitable[H]]
    close: Callable[[H], Awaitable[None]]
    source: Path | None = None  # the file or folder it loads from: for the log, never for a message


@dataclass(eq=False)
class _Entry:
    spec: LoadSpec[Any]
    handle: Any
    pins: int = 0
    last_used: float = field(default_factory=time.monotonic)
    draining: bool = False
    unload_requested: bool = False


class Lease(Generic[H]):
    """A pin on a resident model; ``release`` is idempotent and safe to call from a done callback."""

    def __init__(self, manager: ModelManager, entry: _Entry) -> None:
        self._manager = manager
        self._entry = entry
        self.handle: H = entry.handle
        self._released = False

    def release(self) -> None:
        if not self._released:
            self._released = True
            self._manager._unpin(self._entry)


class ModelManager:
    def __init__(self, max_models: int, memory_budget_bytes: int | None = None, *, force_gc: bool = False) -> None:
        self.max_models = max_models
        self.memory_budget_bytes = memory_budget_bytes
        self.force_gc = force_gc
        self.load_errors: dict[str, str] = {}
        self.evictions = 0
        self.residency = 0  # loads and unloads so far: what is resident changed when it moves
        self._entries: dict[str, _Entry] = {}
        self._load_lock = asyncio.Lock()
        self._changed = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()

    # -- queries ----------------------------------------------------------------------------------

    def is_resident(self, key: str) -> bool:
        return key in self._entries

    def resident(self) -> list[dict[str, Any]]:
        """The resident models, least recently used first; ``idle_s`` is how long one has been unused."""
        now = time.monotonic()
        return [
            {
                "key": k,
                "pins": e.pins,
                "size_bytes": e.spec.size_bytes,
                "draining": e.draining,
                "idle_s": 0.0 if e.pins else round(now - e.last_used, 1),
            }
            for k, e in sorted(self._entries.items(), key=lambda item: item[1].last_used)
        ]

    # -- pins -------------------------------------------------------------------------------------

    async def acquire(self, spec: LoadSpec[H]) -> Lease[H]:
        """Pin ``spec``'s model, loading it first (and evicting others) when it is not resident."""
        while True:
            entry = self._entries.get(spec.key)
            if entry is not None and not entry.draining:
                entry.pins += 1
                entry.last_used = time.monotonic()
                return Lease(self, entry)
            if entry is not None:
                await self._wait_change()
                continue
            await self._load(spec)

    async def ensure_loaded(self, spec: LoadSpec[Any]) -> None:
        lease = await self.acquire(spec)
        lease.release()

    def _unpin(self, entry: _Entry) -> None:
        entry.pins -= 1
        entry.last_used = time.monotonic()
        if entry.pins == 0 and entry.unload_requested and self._entries.get(entry.spec.key) is entry:
            self._spawn(self._close(entry))
        self._notify()

    # -- load / unload ----------------------------------------------------------------------------

    async def _load(self, spec: LoadSpec[Any]) -> None:
        async with self._load_lock:
            if spec.key in self._entries:
                return
            await self._make_room(spec)
            started = time.perf_counter()
            try:
                handle = await spec.open()
            except LatticeError as exc:
                self.load_errors[spec.key] = exc.message
                raise
            except Exception as exc:
                kind, message = describe_load_failure(spec.key, exc, spec.source)
                self.load_errors[spec.key] = message
                log.warning("load of %s from %s failed: %s", spec.key, spec.source, exc)
                raise BackendUnavailable(message, code=kind, retry_after=30) from exc
            self.load_errors.pop(spec.key, None)
            self._entries[spec.key] = _Entry(spec, handle)
            self.residency += 1
            log.info("loaded %s in %.2fs", spec.key, time.perf_counter() - started)
            self._notify()

    def _fits(self, spec: LoadSpec[Any]) -> bool:
        if len(self._entries) + 1 > self.max_models:
            return False
        budget = self.memory_budget_bytes
        return budget is None or sum(e.spec.size_bytes for e in self._entries.values()) + spec.size_bytes <= budget

    async def _make_room(self, spec: LoadSpec[Any]) -> None:
        budget = self.memory_budget_bytes
        if budget is not None and spec.size_bytes > budget:
            message = (
                f"model {spec.key!r} needs about {spec.size_bytes / 1e9:.2f} GB but the memory budget is "
                f"{budget / 1e9:.2f} GB; raise engines.memory_budget_gb or use a smaller quantization"
            )
            self.load_errors[spec.key] = message
            raise BackendUnavailable(message, code="over_memory_budget", retry_after=30)
        while not self._fits(spec):
            by_age = sorted(self._entries.values(), key=lambda e: e.last_used)
            idle = [e for e in by_age if e.pins == 0]
            if idle:
                self.evictions += 1
                await self._close(idle[0])
                continue
            by_age[0].draining = True
            await self._wait_change()

    async def unload(self, key: str) -> UnloadResult:
        """Drop ``key`` now, or once its last lease ends (``deferred``); ``absent`` if not resident."""
        entry = self._entries.get(key)
        if entry is None:
            return "absent"
        if entry.pins > 0:
            entry.unload_requested = True
            return "deferred"
        await self._close(entry)
        return "dropped"

    async def unload_all(self, prefix: str = "") -> None:
        for key, entry in list(self._entries.items()):
            if key.startswith(prefix):
                await self._close(entry)

    async def _close(self, entry: _Entry) -> None:
        key = entry.spec.key
        if self._entries.get(key) is not entry:
            return
        del self._entries[key]
        self.residency += 1
        try:
            await entry.spec.close(entry.handle)
        except Exception:  # a failed close must not wedge residency; the memory is the engine's to lose
            log.exception("closing %s failed", key)
        entry.handle = None
        if self.force_gc:
            gc.collect()
        log.info("unloaded %s", key)
        self._notify()

    # -- plumbing ---------------------------------------------------------------------------------

    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    async def _wait_change(self) -> None:
        await self._changed.wait()

    def _spawn(self, coro: Awaitable[None]) -> None:
        async def run() -> None:
            await coro

        task = asyncio.get_running_loop().create_task(run())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
