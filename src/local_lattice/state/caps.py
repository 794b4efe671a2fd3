"""Concurrency caps counted across replicas: a backend's ``max_concurrency``, a per-model cap of an
upstream server (LM Studio's one call per model) and ``MAX_PARALLEL_MODEL_CALLS``, as leases in the
shared store.

A call that the local queue granted takes one lease per cap that applies to it, all in one Lua call
or none. A lease lives ``lease_seconds`` and is renewed (every third of that, all of a replica's
leases in one call) while the call runs, so a replica that dies gives its slots back within one
lease time. A call that finds a cap full waits in the cap's line in the store, ordered by when it
first asked, and is woken by a release (pub/sub) or, at the latest, a third of a lease time later
(expired leases publish nothing). In-process engines' caps stay local: each replica has its own.

Losing the store: each replica counts on its own, each cap divided by the replicas last seen alive
(at least one call each), so a cap holds to within max(cap, replicas) until the store returns.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from local_lattice.admission.limits import backend_caps
from local_lattice.config import Config
from local_lattice.state.store import PREFIX, Store

IN_PROCESS = frozenset({"llamacpp", "mlx"})  # each replica runs its own engine: its caps stay local
CHANNEL = PREFIX + "cap:freed"
KEEP_MS = 60_000  # a cap's keys outlive their last use by this much

# KEYS: per cap its slots, line and seen sets. ARGV: lease id, lease ms, caps, then each cap's limit.
# A call takes a slot of every cap when, in each cap's line (by first ask), fewer calls stand before
# it than the cap has free slots. Waiters not seen for a lease time (their replica died) leave the line.
ACQUIRE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local id, ttl, n, keep = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local ok = true
for i = 1, n do
  local slots, line, seen = KEYS[3 * i - 2], KEYS[3 * i - 1], KEYS[3 * i]
  redis.call('ZREMRANGEBYSCORE', slots, '-inf', now)
  for _, gone in ipairs(redis.call('ZRANGEBYSCORE', seen, '-inf', now - ttl)) do
    redis.call('ZREM', line, gone)
    redis.call('ZREM', seen, gone)
  end
  redis.call('ZADD', line, 'NX', now, id)
  redis.call('ZADD', seen, now, id)
  local free = tonumber(ARGV[4 + i]) - redis.call('ZCARD', slots)
  if redis.call('ZRANK', line, id) >= free then ok = false end
  for j = 3 * i - 2, 3 * i do redis.call('PEXPIRE', KEYS[j], keep) end
end
if not ok then return 0 end
for i = 1, n do
  redis.call('ZADD', KEYS[3 * i - 2], now + ttl, id)
  redis.call('ZREM', KEYS[3 * i - 1], id)
  redis.call('ZREM', KEYS[3 * i], id)
end
return 1
"""

# KEYS: slots sets; ARGV: lease ms, then one lease id per key. Returns how many leases were still held.
RENEW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local held = 0
for i = 1, #KEYS do
  held = held + redis.call('ZADD', KEYS[i], 'XX', 'CH', now + tonumber(ARGV[1]), ARGV[i + 1])
  redis.call('PEXPIRE', KEYS[i], 60000)
end
return held
"""

# KEYS: per cap its slots, line and seen sets. ARGV: lease id, channel. Frees a slot or a place in line.
RELEASE = """
for i = 1, #KEYS do redis.call('ZREM', KEYS[i], ARGV[1]) end
redis.call('PUBLISH', ARGV[2], '1')
return 0
"""


@dataclass(slots=True)
class Lease:
    """One call's claim on the caps that apply to it: shared in the store, or counted here."""

    id: str
    caps: tuple[tuple[str, int], ...]  # (cap name, limit)
    held: bool = False
    local: bool = False
    asked: bool = False  # the store has seen it (holding a slot or standing in line)
    keys: list[str] = field(default_factory=list)

    def slot_keys(self) -> list[str]:
        return self.keys[0::3]


@dataclass(frozen=True, slots=True)
class CapPlan:
    """Which caps are shared, per backend: its own ``max_concurrency`` when configured, and its
    per-model cap, for upstream servers; the global cap for every backend."""

    backends: dict[str, tuple[int, int]]  # backend -> (max_concurrency, per_model); 0 = not shared
    global_cap: int

    @classmethod
    def of(cls, config: Config) -> CapPlan:
        admission = config.admission
        plan = {}
        for backend in config.backends:
            if backend.type in IN_PROCESS:
                continue
            caps = backend_caps(admission, backend)
            plan[backend.name] = (backend.max_concurrency or 0, caps.per_model)
        return cls(plan, admission.max_parallel_model_calls or 0)

    def caps(self, backend: str, model: str) -> tuple[tuple[str, int], ...]:
        concurrency, per_model = self.backends.get(backend, (0, 0))
        found = []
        if concurrency > 0:
            found.append((f"backend:{backend}", concurrency))
        if per_model > 0:
            found.append((f"model:{backend}/{model}", per_model))
        if self.global_cap > 0:
            found.append(("global", self.global_cap))
        return tuple(found)


class SharedCaps:
    """The shared caps of one replica (see the module)."""

    def __init__(self, plan: CapPlan, store: Store, lease_seconds: float) -> None:
        self.plan = plan
        self.store = store
        self.ttl_ms = max(1, round(lease_seconds * 1000))
        self.poll = lease_seconds / 3  # waiters ask again at least this often; leases renew as often
        self._acquire = store.script(ACQUIRE)
        self._renew = store.script(RENEW)
        self._release = store.script(RELEASE)
        self._ids = itertools.count(1)
        self._held: dict[str, Lease] = {}
        self._local: Counter[str] = Counter()
        self._local_leases = 0
        self._share = 1  # the replicas each cap is divided by while the store is lost
        self._freed = asyncio.Event()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._background: list[asyncio.Task[None]] = []
        store.on_loss(self._divide)
        store.subscribe(CHANNEL, self._freed_elsewhere)

    def _freed_elsewhere(self, data: bytes | None) -> None:
        self._wake()  # also after (re)subscribing: what was freed meanwhile is worth asking for

    def _divide(self, replicas: int) -> None:
        self._share = replicas

    def lease_for(self, backend: str, model: str) -> Lease | None:
        """A lease to take for a call of ``model`` on ``backend``; ``None`` when no shared cap applies."""
        caps = self.plan.caps(backend, model)
        if not caps:
            return None
        lease = Lease(f"{self.store.replica}:{next(self._ids)}", caps)
        for name, _ in caps:
            base = f"{PREFIX}cap:{name}:"
            lease.keys += [base + "slots", base + "line", base + "seen"]
        return lease

    async def acquire(self, lease: Lease, until: float, patience: float | None, clock: Callable[[], float]) -> bool:
        """Take ``lease``: True once held; False when ``patience`` seconds passed first (ask again);
        raises ``TimeoutError`` when ``until`` (on ``clock``) passed without a slot. A cancelled
        caller leaves the line."""
        started = clock()
        while True:
            freed = self._freed  # taken before asking: a release in between still wakes this call
            if await self._try(lease):
                return True
            now = clock()
            if now >= until:
                self.abandon(lease)
                raise TimeoutError
            waits = [until - now, self.poll]
            if patience is not None:
                if now - started >= patience:
                    return False
                waits.append(patience - (now - started))
            try:
                async with asyncio.timeout(max(min(waits), 0.0)):
                    await freed.wait()
            except TimeoutError:
                pass
            except asyncio.CancelledError:
                self.abandon(lease)
                raise

    async def _try(self, lease: Lease) -> bool:
        store = self.store
        if store.usable:
            args = [lease.id, self.ttl_ms, len(lease.caps), KEEP_MS, *(limit for _, limit in lease.caps)]
            lease.asked = True
            answer = await store.run(self._acquire, lease.keys, args)
            if answer is not None:
                if int(answer):
                    lease.held = True
                    self._held[lease.id] = lease
                return lease.held
        share = max(1, self._share)
        if all(self._local[name] < max(1, limit // share) for name, limit in lease.caps):
            for name, _ in lease.caps:
                self._local[name] += 1
            lease.held = lease.local = True
            self._local_leases += 1
            return True
        return False

    def release(self, lease: Lease) -> None:
        """The call ended (or gave up waiting): free its slots or its places in line. Never awaits,
        so a cancelled caller cannot leave a slot behind; the store is told in a task of its own."""
        if lease.local:
            lease.local = lease.held = False
            self._local_leases -= 1
            for name, _ in lease.caps:
                self._local[name] -= 1
            self._wake()
            return
        if self._held.pop(lease.id, None) is not None:
            self._wake()  # a call of this replica waiting for the same cap may take it at once
        lease.held = False
        if lease.asked:
            lease.asked = False
            self._spawn(self.store.run(self._release, lease.keys, [lease.id, CHANNEL]))

    abandon = release

    def _spawn(self, work: Any) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _wake(self) -> None:
        freed, self._freed = self._freed, asyncio.Event()
        freed.set()

    async def _renew_forever(self) -> None:
        while True:
            await asyncio.sleep(self.poll)
            leases = list(self._held.values())
            if leases and self.store.usable:
                keys = [key for lease in leases for key in lease.slot_keys()]
                ids = [lease.id for lease in leases for _ in lease.caps]
                await self.store.run(self._renew, keys, [self.ttl_ms, *ids])

    def start(self) -> None:
        self._background = [asyncio.get_running_loop().create_task(self._renew_forever())]

    def health(self) -> dict[str, Any]:
        return {"leases": len(self._held) + self._local_leases}

    async def aclose(self) -> None:
        for task in self._background:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for lease in list(self._held.values()):
            self.release(lease)
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=1.0)
