"""Overall time limits for upstream calls, kept by one timer for all calls.

A limit armed and cancelled per call (aiohttp's ``ClientTimeout(total=…)`` or ``asyncio.timeout``)
costs a timer handle and two heap operations per request — as much as the rest of the call's
setup. Limits are minutes long, so one check a second is precise enough: ``Deadlines`` notes each
running call's task and its due time, and a single repeating timer cancels the tasks that are
past due. The call site tells its own timeout from any other cancellation with ``expired``.
"""

from __future__ import annotations

import asyncio
from typing import Any

Task = asyncio.Task[Any]


class Deadlines:
    def __init__(self, tick: float = 1.0) -> None:
        self.tick = tick
        self._due: dict[Task, float] = {}
        self._expired: set[Task] = set()
        self._timer: asyncio.TimerHandle | None = None

    def start(self, seconds: float) -> Task:
        """Note the current task's call; it is cancelled once ``seconds`` have passed."""
        task = asyncio.current_task()
        assert task is not None, "a deadline needs a running task"
        loop = task.get_loop()
        self._due[task] = loop.time() + seconds
        if self._timer is None:
            self._timer = loop.call_later(self.tick, self._sweep, loop)
        return task

    def end(self, task: Task) -> None:
        self._due.pop(task, None)

    def expired(self, task: Task) -> bool:
        """Was ``task`` cancelled by its deadline? (Asked once, when handling the cancellation;
        the cancellation is then withdrawn so the task can raise its own error.)"""
        if task not in self._expired:
            return False
        self._expired.discard(task)
        task.uncancel()
        return True

    def _sweep(self, loop: asyncio.AbstractEventLoop) -> None:
        now = loop.time()
        for task, due in list(self._due.items()):
            if due <= now:
                del self._due[task]
                if not task.done():
                    self._expired.add(task)
                    task.cancel()
        self._timer = loop.call_later(self.tick, self._sweep, loop) if self._due else None
