"""One timer keeps every call's time limit; a call can tell its own limit from other cancellations."""

from __future__ import annotations

import asyncio

import pytest

from local_lattice.backends.deadlines import Deadlines


async def call(deadlines: Deadlines, seconds: float, work: float) -> str:
    task = deadlines.start(seconds)
    try:
        await asyncio.sleep(work)
        return "done"
    except asyncio.CancelledError:
        if deadlines.expired(task):
            return "timed out"
        raise
    finally:
        deadlines.end(task)


async def test_a_call_past_its_limit_is_ended_and_the_others_finish() -> None:
    deadlines = Deadlines(tick=0.05)
    results = await asyncio.gather(call(deadlines, 0.1, 5.0), call(deadlines, 5.0, 0.2))
    assert results == ["timed out", "done"]
    await asyncio.sleep(0.1)
    assert deadlines._timer is None  # nothing due: no timer left running


async def test_another_cancellation_stays_a_cancellation() -> None:
    deadlines = Deadlines(tick=0.05)
    task = asyncio.ensure_future(call(deadlines, 5.0, 5.0))
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_a_timed_out_call_leaves_its_task_usable() -> None:
    deadlines = Deadlines(tick=0.05)
    assert await call(deadlines, 0.05, 1.0) == "timed out"
    current = asyncio.current_task()
    assert current is not None
    assert current.cancelling() == 0  # the cancellation was withdrawn
    await asyncio.sleep(0.01)  # and the task awaits normally afterwards
