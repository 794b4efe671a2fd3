"""The fleet at the gateway layer with fakes: affinity, moves, spread, round robin, dry runs, the
figures it keeps, and what a single-backend id is spared."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest

from local_lattice.backends.fake import FakeBackend
from local_lattice.config import load
from local_lattice.errors import BackendUnavailable
from local_lattice.gateway import Gateway, Routed
from local_lattice.probes import HealthChecks
from local_lattice.routing.fleet_state import Fleet, Live
from local_lattice.routing.resolver import Resolution
from local_lattice.types import BackendHealth, ModelInfo
from tests.support.sessions import home_of, sessions_homed_on

NAMES = ["a", "b"]


def fleet_gateway(*backends: FakeBackend, **routing: Any) -> Gateway:
    config = load(None, {"ON_MODEL_MISS": "error"})
    for key, value in routing.items():
        setattr(config.routing, key, value)
    return Gateway(config, {b.name: b for b in backends})


def pair(**kw: Any) -> tuple[FakeBackend, FakeBackend]:
    return FakeBackend.with_models("a", "m", reply="from a", **kw), FakeBackend.with_models("b", "m", reply="from b")


def turn(history: int = 0) -> dict[str, Any]:
    messages = [{"role": "system", "content": "agent"}, {"role": "user", "content": "task"}]
    messages += [{"role": "assistant" if i % 2 == 0 else "user", "content": f"turn {i}"} for i in range(history)]
    return {"model": "m", "messages": messages}


async def ask(gw: Gateway, session: str | None = None, body: dict[str, Any] | None = None) -> Routed:
    body = body or turn()
    headers = {"x-session-id": session} if session else {}
    routed = await gw.route("chat", "m", body=body, headers=headers)
    final, _ = await gw.complete(routed, "chat", body)
    return final


async def test_sessions_stay_on_one_backend_and_the_fleet_uses_both() -> None:
    gw = fleet_gateway(*pair())
    placed: dict[str, set[str]] = {}
    for i in range(10):
        for _ in range(4):
            final = await ask(gw, f"session-{i}")
            placed.setdefault(f"session-{i}", set()).add(final.model.backend)
    assert all(len(backends) == 1 for backends in placed.values())
    assert {b for backends in placed.values() for b in backends} == {"a", "b"}
    assert all(placed[s] == {home_of(s, NAMES)} for s in placed)
    hits = sum(f.affinity.get("hit", 0) for f in gw.fleet.figures.values())
    new = sum(f.affinity.get("new", 0) for f in gw.fleet.figures.values())
    assert (new, hits) == (10, 30)
    assert gw.tracker.in_flight == {"a": 0, "b": 0}


async def test_affinity_is_explained_and_a_dry_run_remembers_nothing() -> None:
    gw = fleet_gateway(*pair())
    [session] = sessions_homed_on("b", NAMES)
    dry = await gw.route("chat", "m", body=turn(), headers={"x-session-id": session}, dry_run=True)
    assert dry.resolution.explanation == "m -> m; on b by affinity (x-session-id, new)"
    assert gw.fleet.placed == {}
    assert gw.fleet.figures == {}
    routed = await gw.route("chat", "m", body=turn(), headers={"x-session-id": session})
    assert routed.model.backend == "b"
    assert [m.backend for m in routed.resolution.candidates] == ["b", "a"]  # the next in rendezvous order
    again = await gw.route("chat", "m", body=turn(), headers={"x-session-id": session})
    assert again.resolution.explanation.endswith("by affinity (x-session-id, hit)")


async def test_a_user_and_a_shared_conversation_start_stick_like_a_session() -> None:
    gw = fleet_gateway(*pair())
    for user in ("alice", "bob", "carol", "dave"):
        seen = {(await ask(gw, body={**turn(n), "user": user})).model.backend for n in range(4)}
        assert len(seen) == 1
    starts = []
    for task in range(6):
        base = [{"role": "system", "content": "shared system prompt"}, {"role": "user", "content": f"task {task}"}]
        seen = set()
        for n in range(4):
            history = [{"role": "assistant" if i % 2 == 0 else "user", "content": f"t{i}"} for i in range(2 * n)]
            final = await ask(gw, body={"model": "m", "messages": base + history})
            seen.add(final.model.backend)
            assert "by affinity (prefix," in final.resolution.explanation
        assert len(seen) == 1
        starts.append(seen.pop())
    assert set(starts) == {"a", "b"}


async def test_a_session_leaves_a_failed_backend_and_stays_where_it_went() -> None:
    a, b = pair()
    gw = fleet_gateway(a, b)
    [session] = sessions_homed_on("a", NAMES)
    assert (await ask(gw, session)).model.backend == "a"
    a.fail_with = BackendUnavailable("refused", backend="a")
    failed_over = await ask(gw, session)
    assert failed_over.model.backend == "b"
    assert "a/m failed (backend_unavailable), failed over" in failed_over.resolution.explanation
    moved = await ask(gw, session)
    assert moved.model.backend == "b"
    assert moved.resolution.explanation.endswith("by affinity (x-session-id, moved)")
    # a comes back (a probe or a success clears it): the session stays on b, new sessions use a again.
    a.fail_with = None
    gw.tracker.succeeded("a")
    for _ in range(3):
        assert (await ask(gw, session)).model.backend == "b"
    [fresh] = sessions_homed_on("a", NAMES, prefix="fresh")
    assert (await ask(gw, fresh)).model.backend == "a"


async def test_a_hot_session_spills_past_its_bound_and_returns() -> None:
    a, b = pair()
    a.delay = b.delay = 0.2
    gw = fleet_gateway(a, b)
    [session] = sessions_homed_on("a", NAMES)
    finals = await asyncio.gather(*(ask(gw, session) for _ in range(4)))
    # In flight on (a, b) as each arrives: (0, 0) a; (1, 0) a; (2, 0): the bound ceil(1.25 * 3 / 2) = 2
    # is reached, spill to b; (2, 1): the bound is now ceil(1.25 * 4 / 2) = 3, a again.
    assert [f.model.backend for f in finals] == ["a", "a", "b", "a"]
    assert gw.fleet.figures["b"].affinity == {"spilled": 1}
    assert (await ask(gw, session)).model.backend == "a"  # not remembered: back home when there is room


async def test_without_a_session_copies_are_spread_least_loaded() -> None:
    a, b = pair()
    a.delay = b.delay = 0.1
    gw = fleet_gateway(a, b, balance="least_loaded")
    finals = await asyncio.gather(*(ask(gw, "ignored-session") for _ in range(6)))
    assert sorted(f.model.backend for f in finals) == ["a"] * 3 + ["b"] * 3
    assert all("by least-loaded (among 2)" in f.resolution.explanation for f in finals)
    latency = gw.fleet.figures["a"].latency
    assert latency is not None
    assert latency >= 0.09


async def test_round_robin_takes_turns() -> None:
    gw = fleet_gateway(*pair(), balance="round_robin")
    backends = [(await ask(gw, "s")).model.backend for _ in range(6)]
    assert backends in (["a", "b"] * 3, ["b", "a"] * 3)


async def test_a_single_backend_id_is_left_alone() -> None:
    gw = fleet_gateway(FakeBackend.with_models("a", "m"), FakeBackend.with_models("b", "other"))
    final = await ask(gw, "session-1")
    assert final.model.backend == "a"
    assert final.resolution.explanation == ""
    routed = await gw.route("chat", "m", body=turn(), headers={"x-session-id": "session-1"})
    assert routed.placement is None
    assert gw.fleet.figures == {}
    assert gw.fleet.ids == set()


async def test_slow_start_gives_a_re_admitted_backend_a_small_share() -> None:
    fleet = Fleet("least_loaded", slow_start=30.0)
    copies = (ModelInfo("m", "a"), ModelInfo("m", "b"))
    resolution = Resolution(copies, requested="m")
    warming = Live({"a": 1, "b": 2}, {}, {"a": 100.0}, 103.0)  # a re-admitted 3 s ago: weight 0.1
    firsts = [fleet.arrange(resolution, "chat", None, {}, warming)[0].chosen.backend for _ in range(20)]
    assert set(firsts) == {"b"}  # (1+1)/0.1 = 20 against 3
    settled = Live({"a": 1, "b": 2}, {}, {"a": 100.0}, 140.0)
    assert {fleet.arrange(resolution, "chat", None, {}, settled)[0].chosen.backend for _ in range(20)} == {"a"}


async def test_placements_are_bounded() -> None:
    fleet = Fleet(max_sessions=3)
    resolution = Resolution((ModelInfo("m", "a"), ModelInfo("m", "b")), requested="m")
    live = Live({}, {}, {}, 0.0)
    for i in range(10):
        fleet.arrange(resolution, "chat", {}, {"x-session-id": f"s{i}"}, live)
    assert len(fleet.placed) == 3


async def test_health_checks_eject_a_failing_member_and_re_admit_it_with_a_slow_start() -> None:
    now = [1000.0]
    a, b = pair()
    gw = fleet_gateway(a, b, cooldown_seconds=5.0)
    gw.tracker.clock = lambda: now[0]
    await ask(gw, "s1")  # makes a and b members of the fleet
    checks = HealthChecks(gw.tracker, gw.backends, gw.fleet.members, interval=1.0)
    a.healthy = False
    await checks.check()
    assert gw.tracker.cooling("a")
    assert not gw.tracker.cooling("b")
    a.healthy = True
    await checks.check()
    assert gw.tracker.cooling("a")  # the cool-down is not over yet
    now[0] += 6
    await checks.check()
    assert not gw.tracker.cooling("a")
    assert gw.tracker.recovered_at == {"a": 1006.0}
    assert gw.tracker.failures == {}


class StallingHealth(FakeBackend):
    """A server that answers its health check only after a long while."""

    async def health(self) -> BackendHealth:
        await asyncio.sleep(10)
        return BackendHealth(ok=True)


async def test_a_slow_check_ejects_only_a_member_with_nothing_in_flight() -> None:
    a = StallingHealth("a", [ModelInfo("m", "a")])
    b = StallingHealth("b", [ModelInfo("m", "b")])
    gw = fleet_gateway(a, b)
    await ask(gw, "s1")
    checks = HealthChecks(gw.tracker, gw.backends, gw.fleet.members, interval=1.0, timeout=0.05)
    gw.tracker.begin("a")  # a is busy with a call: its silence proves nothing
    await checks.check()
    assert not gw.tracker.cooling("a")
    assert gw.tracker.cooling("b")
    gw.tracker.end("a")


async def test_the_check_loop_runs_until_closed() -> None:
    a, b = pair()
    gw = fleet_gateway(a, b, health_check_seconds=0.05)
    await ask(gw, "s1")
    a.healthy = False
    await gw.start()
    for _ in range(100):
        if gw.tracker.cooling("a"):
            break
        await asyncio.sleep(0.02)
    assert gw.tracker.cooling("a")
    assert gw.health_checks.running
    await gw.aclose()
    assert not gw.health_checks.running


async def test_a_cancelled_call_gives_its_in_flight_count_back() -> None:
    slow = FakeBackend.with_models("a", "m", delay=5.0)
    gw = fleet_gateway(slow)
    routed = await gw.route("chat", "m", body=turn())
    task = asyncio.ensure_future(gw.complete(routed, "chat", turn()))
    await asyncio.sleep(0.05)
    assert gw.tracker.in_flight == {"a": 1}
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert gw.tracker.in_flight == {"a": 0}


async def test_fleet_figures_are_in_metrics_and_the_dashboard() -> None:
    from local_lattice.dashboard import snapshot

    gw = fleet_gateway(*pair())
    for i in range(4):
        await ask(gw, f"s{i}")
        await ask(gw, f"s{i}")
    text = gw.observer.metrics.render().decode()
    assert 'lattice_backend_outstanding{backend="a"} 0.0' in text
    assert 'lattice_affinity_total{backend="' in text
    assert 'lattice_hedges_started_total{backend="b"} 0.0' in text
    assert "lattice_backend_latency_ewma_seconds{backend=" in text
    hits = sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("lattice_affinity_total") and 'outcome="hit"' in line
    )
    assert hits == 4
    data = await snapshot.build(gw)
    rows = {b["name"]: b["fleet"] for b in data["backends"]}
    assert sum(r["affinity_hits"] for r in rows.values()) == 4
    assert set(rows["a"]) == {"outstanding", "latency_ms", "affinity", "affinity_hits", "hedges_started", "hedges_won"}
    orjson.dumps(data)
