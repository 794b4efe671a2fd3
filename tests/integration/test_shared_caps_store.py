"""The shared caps' leases against a real ``redis-server``, in one process: callers in line are served
in the order they first asked, a caller that leaves gives up its place, a lease no one renews
expires, a renewed one does not, and a lost store divides the cap among the replicas."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest

from local_lattice.config_state import StateConfig
from local_lattice.state.caps import CapPlan, Lease, SharedCaps
from local_lattice.state.store import Store
from tests.support.redis_server import RedisServer, redis_server

pytestmark = pytest.mark.slow

PLAN = CapPlan({"up": (2, 0)}, global_cap=0)
FOREVER = 1e12


@pytest.fixture
def server() -> AsyncIterator[RedisServer]:
    with redis_server() as found:
        yield found


async def replica(server: RedisServer, lease_seconds: float = 3.0) -> SharedCaps:
    caps = SharedCaps(PLAN, Store(StateConfig(url=server.url)), lease_seconds)
    caps.start()
    await asyncio.sleep(0.05)  # subscribed
    return caps


async def take(caps: SharedCaps, patience: float | None = None) -> Lease:
    lease = caps.lease_for("up", "m")
    assert lease is not None
    assert await caps.acquire(lease, FOREVER, patience, time.monotonic)
    return lease


async def close(*replicas: SharedCaps) -> None:
    for caps in replicas:
        await caps.aclose()
        await caps.store.aclose()


async def test_only_configured_caps_of_upstream_servers_are_shared(server: RedisServer) -> None:
    caps = await replica(server)
    try:
        assert caps.lease_for("other", "m") is None  # no cap configured: no store call at all
        lease = caps.lease_for("up", "m")
        assert lease is not None
        assert lease.caps == (("backend:up", 2),)
    finally:
        await close(caps)


async def test_callers_in_line_are_served_in_the_order_they_asked(server: RedisServer) -> None:
    one, two = await replica(server), await replica(server)
    try:
        first, second = await take(one), await take(two)
        order: list[str] = []

        async def wait_then_note(caps: SharedCaps, name: str) -> Lease:
            lease = await take(caps)
            order.append(name)
            return lease

        early = asyncio.create_task(wait_then_note(two, "early"))
        await asyncio.sleep(0.1)
        late = asyncio.create_task(wait_then_note(one, "late"))
        await asyncio.sleep(0.1)
        assert order == []  # the cap (2) is full
        one.release(first)
        got = await asyncio.wait_for(early, 2)  # woken by the release, not by a poll a second later
        await asyncio.sleep(0.1)
        assert order == ["early"]
        two.release(second)
        await asyncio.wait_for(late, 2)
        assert order == ["early", "late"]
        two.release(got)
        one.release(late.result())
    finally:
        await close(one, two)


async def test_a_caller_that_leaves_gives_up_its_place(server: RedisServer) -> None:
    one, two = await replica(server), await replica(server)
    try:
        held = [await take(one), await take(one)]
        leaving = asyncio.create_task(take(two))
        await asyncio.sleep(0.1)
        leaving.cancel()
        with pytest.raises(asyncio.CancelledError):
            await leaving
        staying = asyncio.create_task(take(two))
        await asyncio.sleep(0.1)
        one.release(held.pop())
        lease = await asyncio.wait_for(staying, 2)  # not stuck behind the caller that left
        two.release(lease)
        one.release(held.pop())
    finally:
        await close(one, two)


async def test_a_full_cap_turns_a_caller_away_when_its_wait_runs_out(server: RedisServer) -> None:
    caps = await replica(server)
    try:
        held = [await take(caps), await take(caps)]
        lease = caps.lease_for("up", "m")
        assert lease is not None
        started = time.monotonic()
        with pytest.raises(TimeoutError):
            await caps.acquire(lease, started + 0.5, None, time.monotonic)
        assert 0.4 < time.monotonic() - started < 1.5
        for one in held:
            caps.release(one)
    finally:
        await close(caps)


async def test_an_unrenewed_lease_expires_and_a_renewed_one_does_not(server: RedisServer) -> None:
    dead = SharedCaps(PLAN, Store(StateConfig(url=server.url)), 1.0)  # never started: never renews
    alive = await replica(server, lease_seconds=1.0)
    try:
        await take(dead)
        kept = await take(alive)
        started = time.monotonic()
        waiting = await take(alive)  # the dead replica's slot comes back after its lease time
        assert 0.5 < time.monotonic() - started < 2.5
        late = alive.lease_for("up", "m")
        assert late is not None
        # The live replica's two leases outlive their lease time: renewed every third of it.
        assert not await alive.acquire(late, FOREVER, 2.5, time.monotonic)
        alive.release(late)
        alive.release(kept)
        alive.release(waiting)
    finally:
        await close(dead, alive)


async def test_a_lost_store_divides_the_cap_among_the_replicas(server: RedisServer) -> None:
    caps = await replica(server)
    try:
        caps.store.replicas = 2
        server.kill()
        lease = await take(caps)  # a share of max(1, 2 // 2) = 1 slot, counted here
        assert lease.local
        assert caps.store.degraded
        other = caps.lease_for("up", "m")
        assert other is not None
        assert not await caps.acquire(other, FOREVER, 0.3, time.monotonic)
        caps.release(lease)
        assert await caps.acquire(other, FOREVER, 0.3, time.monotonic)
        caps.release(other)
        assert caps.health() == {"leases": 0}
    finally:
        await close(caps)
