"""Hedging at the gateway layer with fakes: the second candidate starts when the first is silent, the
first byte wins, the loser is closed and its admission slot freed; never to a billed backend unless
allowed, never without a free slot; failures and cancellations during the race leave nothing held."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import orjson
import pytest

from local_lattice.backends.fake import FakeBackend
from local_lattice.config import BackendConfig, load
from local_lattice.errors import BackendUnavailable, InvalidRequest, UpstreamStatusError
from local_lattice.gateway import Gateway, Routed
from local_lattice.hedging import Seat, hedge_delay
from local_lattice.types import BackendResponse
from tests.support.sessions import sessions_homed_on

BODY = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
NAMES = ["slow", "fast"]


def gateway(slow_delay: float = 2.0, per_backend: int = 64, **routing: Any) -> tuple[Gateway, FakeBackend, FakeBackend]:
    config = load(None, {"ON_MODEL_MISS": "error"})
    config.admission.backend_max_concurrency = per_backend
    for key, value in routing.items():
        setattr(config.routing, key, value)
    slow = FakeBackend.with_models("slow", "m", reply="from slow", delay=slow_delay)
    fast = FakeBackend.with_models("fast", "m", reply="from fast")
    return Gateway(config, {"slow": slow, "fast": fast}), slow, fast


async def route_to_slow(gw: Gateway, hedge_ms: str | None = "100") -> Routed:
    [session] = sessions_homed_on("slow", NAMES)
    headers = {"x-session-id": session} | ({"x-lattice-hedge-ms": hedge_ms} if hedge_ms is not None else {})
    routed = await gw.route("chat", "m", body=dict(BODY), headers=headers)
    assert routed.model.backend == "slow"
    return routed


def admitted(gw: Gateway, routed: Routed) -> Seat:
    waiter = gw.admission.enter(routed.model.id, routed.model.backend, gw.admission.context(None, {}))
    assert waiter.granted
    return Seat(gw.admission.context(None, {}), waiter.close)


def content(answer: BackendResponse) -> str:
    return str(orjson.loads(answer.content)["choices"][0]["message"]["content"])


def assert_nothing_held(gw: Gateway) -> None:
    assert set(gw.tracker.in_flight.values()) <= {0}
    assert gw.admission.snapshot()["inflight"] == 0
    assert gw.admission.snapshot()["waiting"] == 0


async def test_a_silent_first_candidate_is_hedged_and_the_first_answer_wins() -> None:
    gw, slow, _fast = gateway()
    routed = await route_to_slow(gw)
    seat = admitted(gw, routed)
    started = time.monotonic()
    final, answer = await gw.complete(routed, "chat", dict(BODY), seat)
    took = time.monotonic() - started
    assert content(answer) == "from fast"
    assert final.routed_to == "fast/m"
    assert 0.1 <= took < 1.0
    assert "hedged to fast after 100 ms, it answered first" in final.resolution.explanation
    assert len(slow.seen) == 1
    seat.release()  # what dispatch does when the request ends: a no-op by now
    assert_nothing_held(gw)
    figures = gw.fleet.figures
    assert (figures["fast"].hedges_started, figures["fast"].hedges_won) == (1, 1)
    assert figures["slow"].latency is not None
    assert figures["slow"].latency >= 0.1  # the loser's time counts against it


async def test_the_losers_slot_is_free_as_soon_as_the_hedge_wins() -> None:
    gw, _, _ = gateway()
    routed = await route_to_slow(gw)
    seat = admitted(gw, routed)
    _, first, rest = await gw.stream(routed, "chat", dict(BODY), seat)
    assert first is not None
    assert b"from" in first.payload
    # The stream is still open on fast; slow's slot (the request's own) is already back.
    inflight = gw.admission.snapshot()["models"]
    assert inflight == {"fast/m": {"waiting": 0, "inflight": 1, "service_sec": None}}
    assert gw.tracker.in_flight == {"slow": 0, "fast": 1}
    assert [c async for c in rest]
    assert_nothing_held(gw)


async def test_a_hedged_stream_closes_the_losing_stream_before_answering() -> None:
    gw, slow, fast = gateway()
    routed = await route_to_slow(gw)
    final, first, rest = await gw.stream(routed, "chat", dict(BODY), admitted(gw, routed))
    assert final.routed_to == "fast/m"
    assert slow.closed_streams == 1  # closed before the winner's first chunk was handed back
    assert first is not None
    assert b"from" in first.payload
    assert [c async for c in rest]
    assert fast.closed_streams == 1
    assert_nothing_held(gw)


async def test_a_fast_first_answer_needs_no_hedge() -> None:
    gw, _slow, fast = gateway(slow_delay=0.0)
    routed = await route_to_slow(gw)
    final, _ = await gw.complete(routed, "chat", dict(BODY), admitted(gw, routed))
    assert final.routed_to == "slow/m"
    assert fast.seen == []
    assert gw.fleet.figures["fast"].hedges_started == 0
    assert_nothing_held(gw)


async def test_hedging_is_off_by_default_and_set_by_the_config() -> None:
    gw, _, fast = gateway(slow_delay=0.3)
    routed = await route_to_slow(gw, hedge_ms=None)
    assert routed.hedge_after == 0
    final, _ = await gw.complete(routed, "chat", dict(BODY), admitted(gw, routed))
    assert final.routed_to == "slow/m"
    assert fast.seen == []
    configured, _, _ = gateway(hedge_after_ms=150)
    assert (await route_to_slow(configured, hedge_ms=None)).hedge_after == pytest.approx(0.15)
    assert (await route_to_slow(configured, hedge_ms="0")).hedge_after == 0  # per request: off


def priced(gw: Gateway, name: str) -> None:
    """Give ``name`` a price, as its config entry would."""
    from local_lattice.cloud.cost import PriceBook

    entry = BackendConfig(name=name, url="http://127.0.0.1:9/v1", input_usd_per_mtok=1.0)
    gw.config.backends.append(entry)
    gw.billing.prices = PriceBook.of(gw.config)


async def test_never_hedged_to_or_from_a_billed_backend_unless_allowed() -> None:
    gw, _, fast = gateway(slow_delay=0.3)
    priced(gw, "fast")
    routed = await route_to_slow(gw)
    started = time.monotonic()
    final, _ = await gw.complete(routed, "chat", dict(BODY), admitted(gw, routed))
    assert final.routed_to == "slow/m"
    assert time.monotonic() - started >= 0.3
    assert fast.seen == []
    gw, _slow, fast = gateway(slow_delay=0.3)
    priced(gw, "slow")
    routed = await route_to_slow(gw)
    final, _ = await gw.complete(routed, "chat", dict(BODY), admitted(gw, routed))
    assert (final.routed_to, fast.seen) == ("slow/m", [])
    gw, _, _ = gateway(hedge_billed=True)
    priced(gw, "fast")
    routed = await route_to_slow(gw)
    final, _ = await gw.complete(routed, "chat", dict(BODY), admitted(gw, routed))
    assert final.routed_to == "fast/m"
    assert_nothing_held(gw)


async def test_no_hedge_without_a_free_slot_on_the_next_backend() -> None:
    gw, _, fast = gateway(slow_delay=0.3, per_backend=1)
    context = gw.admission.context(None, {})
    holder = gw.admission.enter("m", "fast", context)
    assert holder.granted
    routed = await route_to_slow(gw)
    final, _ = await gw.complete(routed, "chat", dict(BODY), admitted(gw, routed))
    assert final.routed_to == "slow/m"
    assert fast.seen == []
    holder.close()
    assert_nothing_held(gw)


async def test_a_first_candidate_failing_during_the_race_leaves_the_hedge_to_answer() -> None:
    gw, slow, fast = gateway(slow_delay=0.2)
    slow.fail_with = BackendUnavailable("refused", backend="slow")
    fast.delay = 0.3
    routed = await route_to_slow(gw)
    final, answer = await gw.complete(routed, "chat", dict(BODY), admitted(gw, routed))
    assert content(answer) == "from fast"
    assert "slow/m failed (backend_unavailable), failed over" in final.resolution.explanation
    assert gw.tracker.failures == {"slow": 1}
    assert_nothing_held(gw)


async def test_a_client_error_ends_the_race_at_once() -> None:
    gw, slow, fast = gateway(slow_delay=0.2)
    slow.fail_with = UpstreamStatusError("bad", status=400, backend="slow")
    fast.delay = 5.0
    routed = await route_to_slow(gw)
    started = time.monotonic()
    with pytest.raises(UpstreamStatusError):
        await gw.complete(routed, "chat", dict(BODY), admitted(gw, routed))
    assert time.monotonic() - started < 1.0
    assert len(fast.seen) == 1
    assert gw.fleet.figures["fast"].hedges_won == 0
    assert set(gw.tracker.in_flight.values()) == {0}


async def test_every_candidate_failing_raises_the_last_failure_with_the_story() -> None:
    gw, slow, fast = gateway(slow_delay=0.2)
    slow.fail_with = BackendUnavailable("refused", backend="slow")
    fast.fail_with = BackendUnavailable("refused too", backend="fast")
    fast.delay = 0.2
    routed = await route_to_slow(gw)
    seat = admitted(gw, routed)
    with pytest.raises(BackendUnavailable) as caught:
        await gw.complete(routed, "chat", dict(BODY), seat)
    told = caught.value.headers["X-Model-Resolution"]
    assert "slow/m failed" in told
    assert "fast/m failed" in told
    seat.release()
    assert_nothing_held(gw)


async def test_a_client_leaving_during_the_race_closes_both_calls() -> None:
    gw, slow, fast = gateway(slow_delay=5.0)
    fast.delay = 5.0
    routed = await route_to_slow(gw)
    seat = admitted(gw, routed)
    task = asyncio.ensure_future(gw.stream(routed, "chat", dict(BODY), seat))
    await asyncio.sleep(0.3)
    assert gw.tracker.in_flight == {"slow": 1, "fast": 1}
    assert gw.admission.snapshot()["inflight"] == 2
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert (slow.closed_streams, fast.closed_streams) == (1, 1)
    seat.release()
    assert_nothing_held(gw)


async def test_without_a_seat_there_is_no_hedge() -> None:
    gw, _, fast = gateway(slow_delay=0.2)
    routed = await route_to_slow(gw)
    final, _ = await gw.complete(routed, "chat", dict(BODY))
    assert final.routed_to == "slow/m"
    assert fast.seen == []


@pytest.mark.parametrize("value", ["soon", "-1", "nan", "inf", "600001", ""])
def test_a_bad_hedge_header_is_a_400(value: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        hedge_delay(value)
    assert caught.value.param == "X-Lattice-Hedge-Ms"


async def test_the_hedge_header_reaches_routing() -> None:
    gw, _, _ = gateway()
    assert hedge_delay(" 250 ") == pytest.approx(0.25)
    with pytest.raises(InvalidRequest):
        await gw.route("chat", "m", body=dict(BODY), headers={"x-lattice-hedge-ms": "later"})
