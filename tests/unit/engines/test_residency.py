"""The residency manager with fake loaders: LRU, pins, draining, deferred unload, budget, errors."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import pytest

from local_lattice.engines.residency import LoadSpec, ModelManager
from local_lattice.errors import BackendUnavailable


@dataclass
class FakeLoader:
    opened: list[str] = field(default_factory=list)
    closed: list[str] = field(default_factory=list)
    fail: dict[str, Exception] = field(default_factory=dict)
    delay: float = 0.0

    def spec(self, key: str, size: int = 1) -> LoadSpec[str]:
        async def open_() -> str:
            await asyncio.sleep(self.delay)
            if key in self.fail:
                raise self.fail[key]
            self.opened.append(key)
            return f"handle:{key}"

        async def close(handle: str) -> None:
            self.closed.append(handle.removeprefix("handle:"))

        return LoadSpec(key, size, open_, close)


async def test_least_recently_used_unpinned_model_is_evicted() -> None:
    loader = FakeLoader()
    manager = ModelManager(max_models=2)
    for key in ("a", "b", "a", "c"):
        (await manager.acquire(loader.spec(key))).release()
    assert loader.closed == ["b"]
    assert sorted(r["key"] for r in manager.resident()) == ["a", "c"]


async def test_pinned_model_is_never_evicted_and_the_loader_waits() -> None:
    loader = FakeLoader()
    manager = ModelManager(max_models=1)
    lease_a = await manager.acquire(loader.spec("a"))
    waiting_b = asyncio.ensure_future(manager.acquire(loader.spec("b")))
    await asyncio.sleep(0.05)
    assert not waiting_b.done()
    assert loader.closed == []
    # a new request for the draining model queues behind the switch instead of starving it
    waiting_a = asyncio.ensure_future(manager.acquire(loader.spec("a")))
    await asyncio.sleep(0.05)
    assert not waiting_a.done()
    lease_a.release()
    lease_b = await asyncio.wait_for(waiting_b, 1)
    assert lease_b.handle == "handle:b"
    assert loader.closed == ["a"]
    lease_b.release()
    lease_a2 = await asyncio.wait_for(waiting_a, 1)
    assert lease_a2.handle == "handle:a"
    assert loader.opened == ["a", "b", "a"]


async def test_unload_while_pinned_is_deferred_until_release() -> None:
    loader = FakeLoader()
    manager = ModelManager(max_models=2)
    lease = await manager.acquire(loader.spec("a"))
    assert await manager.unload("a") == "deferred"
    assert manager.is_resident("a")
    lease.release()
    lease.release()  # idempotent
    await asyncio.sleep(0.01)
    assert not manager.is_resident("a")
    assert loader.closed == ["a"]
    assert await manager.unload("a") == "absent"


async def test_concurrent_requests_load_a_model_once() -> None:
    loader = FakeLoader(delay=0.05)
    manager = ModelManager(max_models=2)
    leases = await asyncio.gather(*(manager.acquire(loader.spec("a")) for _ in range(5)))
    assert loader.opened == ["a"]
    assert manager.resident()[0]["pins"] == 5
    for lease in leases:
        lease.release()


async def test_memory_budget_evicts_to_fit_and_refuses_a_model_bigger_than_it() -> None:
    loader = FakeLoader()
    manager = ModelManager(max_models=5, memory_budget_bytes=10)
    (await manager.acquire(loader.spec("a", 6))).release()
    (await manager.acquire(loader.spec("b", 3))).release()
    (await manager.acquire(loader.spec("c", 5))).release()
    assert loader.closed == ["a"]
    with pytest.raises(BackendUnavailable, match="memory budget") as info:
        await manager.acquire(loader.spec("huge", 11))
    assert info.value.code == "over_memory_budget"
    assert "huge" in manager.load_errors


async def test_load_errors_are_remembered_classified_and_cleared_by_a_good_load() -> None:
    loader = FakeLoader(fail={"m": RuntimeError("ggml: failed to allocate buffer, out of memory")})
    manager = ModelManager(max_models=2)
    with pytest.raises(BackendUnavailable) as info:
        await manager.acquire(loader.spec("m"))
    assert info.value.code == "out_of_memory"
    assert "MAX_CONCURRENT_MODELS" in manager.load_errors["m"]
    loader.fail.clear()
    (await manager.acquire(loader.spec("m"))).release()
    assert "m" not in manager.load_errors
