"""``Later``: run a batch's work once, a moment after the first item, on the event loop.

Used where per-request work is cheaper gathered (log lines, the observer's metrics pass): the first
item of a batch asks for a run ``delay`` seconds later on the running loop; the items after it ride
along. Outside a running loop there is no later, and the caller does the work at once. A loop that
closed before its run came is replaced by the next loop that asks.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

Loop = asyncio.AbstractEventLoop


class Later:
    """A run of ``run`` scheduled once, ``delay`` seconds after the first item asks (see the module)."""

    def __init__(self, run: Callable[[Loop], None], delay: float) -> None:
        self.run = run
        self.delay = delay
        self._on: Loop | None = None  # the loop a run is scheduled (or going on) on

    def ask(self) -> bool:
        """Make sure a run is scheduled; False when there is no running loop to schedule it on."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return False
        if self._on is not loop:
            self._on = loop
            loop.call_later(self.delay, self._fire, loop)
        return True

    def holds(self, loop: Loop) -> bool:
        """Is the run scheduled on ``loop`` still wanted? (A ``done`` since means it is not.)"""
        return self._on is loop

    def done(self) -> None:
        """The batch's work is done: the next item asks for a new run."""
        self._on = None

    def _fire(self, loop: Loop) -> None:
        if self._on is loop:
            self.run(loop)
