"""The admission owner on a real event loop with a fake clock (time moves only when the test says)."""

from __future__ import annotations

import asyncio

import pytest

from local_lattice.admission import Admission, QueueContext
from local_lattice.admission.tickets import BackendCaps, Limits
from local_lattice.errors import DeadlineExceeded, RateLimited


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def make(clock: FakeClock, **limits: object) -> Admission:
    base: dict[str, object] = {
        "queue_max_per_model": 2,
        "queue_max_total": 3,
        "default_backend": BackendCaps(max_concurrency=0, per_model=1),
        "retry_fallback_sec": 2.0,
    }
    base.update(limits)
    return Admission(Limits(**base), default_wait=20.0, clock=clock)  # type: ignore[arg-type]


CTX = QueueContext()


async def test_a_released_slot_goes_to_the_next_waiter() -> None:
    clock = FakeClock()
    admission = make(clock)
    first = admission.enter("m", "b", CTX)
    assert first.granted
    second = admission.enter("m", "b", CTX)
    assert not second.granted
    assert second.position() == 0
    clock.now += 1.5
    first.close()
    grant = await second.wait()
    assert grant is not None
    assert grant.waited == pytest.approx(1.5)
    assert admission.snapshot()["models"]["b/m"] == {"waiting": 0, "inflight": 1, "service_sec": 1.5}
    second.close()
    second.close()  # idempotent: the slot is freed once
    assert admission.snapshot()["inflight"] == 0


async def test_full_queue_is_a_429_with_retry_after_from_the_service_time() -> None:
    clock = FakeClock()
    admission = make(clock)
    running = admission.enter("m", "b", CTX)
    clock.now += 3.0
    running.close()  # the model took 3 s
    running = admission.enter("m", "b", CTX)
    waiters = [admission.enter("m", "b", CTX) for _ in range(2)]
    clock.now += 1.0  # the running call is 1 s into a ~3 s job
    with pytest.raises(RateLimited) as caught:
        admission.enter("m", "b", CTX)
    error = caught.value
    assert error.status == 429
    assert error.type == "queue_overloaded_model"
    assert error.headers["Retry-After"] == "2"  # ~2 s until the running call ends, not a constant
    assert error.headers["X-MLX-Queue-Depth"] == "2"
    assert error.headers["X-MLX-InFlight"] == "1"
    body = error.envelope()["error"]
    assert body["retry"]["retry_after_sec"] == 2
    assert body["retry"]["jitter_sec"] == 0.5
    assert body["queue"]["model_depth"] == 2
    for waiter in [running, *waiters]:
        waiter.close()


async def test_total_bound_rejects_across_models() -> None:
    clock = FakeClock()
    admission = make(clock)
    held = [admission.enter(m, "b", CTX) for m in ("m1", "m2")]
    queued = [admission.enter("m1", "b", CTX), admission.enter("m1", "b", CTX), admission.enter("m2", "b", CTX)]
    with pytest.raises(RateLimited) as caught:
        admission.enter("m2", "b", CTX)
    assert caught.value.type == "queue_overloaded_total"
    for waiter in held + queued:
        waiter.close()


async def test_waiters_time_out_when_the_clock_passes_their_budget() -> None:
    clock = FakeClock()
    admission = make(clock)
    running = admission.enter("m", "b", CTX)
    short = admission.enter("m", "b", QueueContext(max_wait=0.5))
    deadline = admission.enter("m", "b", QueueContext(deadline=clock.now + 0.2))
    clock.now += 0.3
    admission.poke()
    with pytest.raises(DeadlineExceeded) as missed:
        await deadline.wait()
    assert missed.value.status == 504
    assert missed.value.type == missed.value.code == "deadline_exceeded"
    assert missed.value.extra["queue"]["model"] == "b/m"  # the original's queue details stay
    assert short.position() == 0
    clock.now += 0.3
    admission.poke()
    with pytest.raises(RateLimited) as caught:
        await short.wait()
    assert caught.value.type == "queue_timeout"
    assert float(caught.value.headers["X-Lattice-Queue-Ms"]) == pytest.approx(600.0)
    running.close()


async def test_a_past_deadline_is_rejected_at_once() -> None:
    clock = FakeClock()
    admission = make(clock)
    with pytest.raises(DeadlineExceeded) as caught:
        admission.enter("m", "b", QueueContext(deadline=clock.now - 1))
    assert caught.value.type == "deadline_exceeded"
    assert admission.snapshot()["waiting"] == 0


async def test_a_cancelled_waiter_frees_its_place() -> None:
    clock = FakeClock()
    admission = make(clock)
    running = admission.enter("m", "b", CTX)
    queued = [admission.enter("m", "b", CTX) for _ in range(2)]
    task = asyncio.create_task(queued[0].wait())
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert admission.snapshot()["waiting"] == 1
    late = admission.enter("m", "b", CTX)  # the freed place takes it
    running.close()
    assert queued[1].granted
    for waiter in (queued[1], late):
        waiter.close()


async def test_a_grant_that_arrives_as_the_caller_is_cancelled_is_released() -> None:
    clock = FakeClock()
    admission = make(clock)
    running = admission.enter("m", "b", CTX)
    waiter = admission.enter("m", "b", CTX)
    task = asyncio.create_task(waiter.wait())
    await asyncio.sleep(0)
    running.close()  # grants ``waiter`` ...
    task.cancel()  # ... whose task is cancelled before it resumes
    with pytest.raises(asyncio.CancelledError):
        await task
    assert admission.snapshot()["inflight"] == 0


async def test_higher_priority_is_served_first_and_the_global_cap_holds() -> None:
    clock = FakeClock()
    admission = make(clock, global_cap=1, queue_max_per_model=10, queue_max_total=10)
    running = admission.enter("m1", "b", CTX)
    low = admission.enter("m2", "b", QueueContext(priority=-5))
    high = admission.enter("m3", "b", QueueContext(priority=5))
    assert not low.granted
    assert not high.granted
    running.close()
    assert high.granted
    assert not low.granted
    high.close()
    assert low.granted
    low.close()


async def test_the_real_timer_expires_waiters() -> None:
    admission = Admission(Limits(default_backend=BackendCaps(0, 1)), default_wait=20.0)
    running = admission.enter("m", "b", CTX)
    waiter = admission.enter("m", "b", QueueContext(max_wait=0.05))
    with pytest.raises(RateLimited) as caught:
        await asyncio.wait_for(waiter.wait(), 2.0)
    assert caught.value.type == "queue_timeout"
    running.close()
    admission.aclose()


async def test_admit_holds_and_frees_the_slot() -> None:
    clock = FakeClock()
    admission = make(clock)
    async with admission.admit("m", "b", CTX) as grant:
        assert grant.waited == 0.0
        assert admission.snapshot()["inflight"] == 1
    assert admission.snapshot()["inflight"] == 0


def test_a_request_that_asks_nothing_gets_its_clients_default_context() -> None:
    admission = Admission(Limits())
    alice = {"authorization": "Bearer alice-key"}
    plain = admission.context(None, alice)
    assert admission.context(None, dict(alice)) is plain  # remembered per credential
    assert plain.client.startswith("key:")
    assert plain.priority == 0
    assert plain.max_wait is None
    assert admission.context(None, {"x-api-key": "bob-key"}).client != plain.client
    urgent = admission.context(None, {**alice, "x-lattice-priority": "5"})
    assert urgent.priority == 5
    assert urgent.client == plain.client
    assert admission.context({"max_queue_wait_ms": 100}, alice).max_wait == 0.1


async def test_an_immediate_grant_and_its_release_leave_no_state() -> None:
    admission = Admission(Limits(default_backend=BackendCaps(0, 2)))
    async with admission.admit("m", "b", QueueContext()) as grant:
        assert grant.waited == 0.0
        assert admission.snapshot()["inflight"] == 1
    assert admission.snapshot()["inflight"] == 0
    assert admission.scheduler.next_expiry() is None
