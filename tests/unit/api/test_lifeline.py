"""The lifeline on its own: who may end a request, which ending wins, and the deadline timer."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from local_lattice.api.lifeline import LIFE, SERVER_EXTENSIONS, Lifeline
from local_lattice.errors import ClientClosedRequest, DeadlineExceeded, ServerShuttingDown


def scope(hooked: bool) -> dict[str, Any]:
    found: dict[str, Any] = {"type": "http", "state": {}}
    if hooked:
        found["extensions"] = SERVER_EXTENSIONS
    return found


async def never() -> dict[str, Any]:
    await asyncio.Event().wait()
    return {"type": "http.disconnect"}


async def served(scope: dict[str, Any], seconds: float = 5.0) -> tuple[str, Lifeline]:
    """A request's work: sleep, and answer with how it ended."""
    life = Lifeline.arm(scope, never)
    try:
        await asyncio.sleep(seconds)
    except asyncio.CancelledError:
        return type(life.settle()).__name__, life
    finally:
        life.disarm()
    return "finished", life


async def test_an_ending_cancels_the_work_and_is_withdrawn_once_caught() -> None:
    where = scope(hooked=True)
    task = asyncio.create_task(served(where))
    await asyncio.sleep(0)
    life = where["state"][LIFE]
    life.end(ClientClosedRequest("gone"))
    life.end(ServerShuttingDown())  # the first ending wins
    ended, _ = await task
    assert ended == "ClientClosedRequest"
    assert task.cancelling() == 0


async def test_a_disarmed_lifeline_ignores_endings() -> None:
    where = scope(hooked=True)
    ended, life = await served(where, seconds=0)
    life.end(ClientClosedRequest("late"))
    assert ended == "finished"
    assert life.ending is None


async def test_the_deadline_timer_ends_the_request() -> None:
    async def bounded() -> tuple[str, Lifeline]:
        life = Lifeline.arm(scope(hooked=True), never)
        life.bound(time.monotonic() + 0.05)
        life.bound(time.monotonic() + 10)  # a later deadline does not move it
        try:
            await asyncio.sleep(5)
        except asyncio.CancelledError:
            return type(life.settle()).__name__, life
        return "finished", life

    started = time.monotonic()
    ended, life = await bounded()
    assert ended == "DeadlineExceeded"
    assert time.monotonic() - started < 1
    assert life.overdue()
    with pytest.raises(DeadlineExceeded):
        life.check()
    life.disarm()


async def test_without_the_servers_hook_a_watcher_hears_the_disconnect() -> None:
    messages = [{"type": "http.request", "body": b""}, {"type": "http.disconnect"}]

    async def receive() -> dict[str, Any]:
        await asyncio.sleep(0.05)
        return messages.pop(0)

    where = scope(hooked=False)

    async def work() -> str:
        life = Lifeline.arm(where, receive)
        try:
            await asyncio.sleep(5)
        except asyncio.CancelledError:
            return type(life.settle()).__name__
        finally:
            life.disarm()
        return "finished"

    assert await asyncio.wait_for(work(), 2) == "ClientClosedRequest"


async def test_with_the_servers_hook_no_watcher_task_is_started() -> None:
    before = len(asyncio.all_tasks())
    life = Lifeline.arm(scope(hooked=True), never)
    assert len(asyncio.all_tasks()) == before
    life.disarm()
