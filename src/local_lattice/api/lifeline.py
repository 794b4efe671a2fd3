"""A request's lifeline: the one owner of ending a request early, and of how it then ends.

``Lifeline.arm`` is called once a request's body is read, for the routes that call models or
routing (``app.Handled``), and leaves the lifeline in ``scope["state"]``. Three things may end the
request before it finishes, each by calling ``end`` with the error that stands for the ending:

- its client leaves: the server protocol calls ``end(ClientClosedRequest)`` from
  ``connection_lost`` (``server_protocol``; it advertises that with the ``lattice.lifeline`` ASGI
  extension). Under a server without it, a watcher task reads ``receive`` for ``http.disconnect``;
- its deadline passes: ``bound(deadline)`` arms one timer, only for requests that carry one;
- the server stops: once the drain time is over, the server calls ``end(ServerShuttingDown)`` on
  every request still open (``serving.GatewayServer``).

``end`` cancels the task doing the request's work — the handler's task, or a stream's pump once
the stream has started (``follow``) — so whatever it awaits (the admission queue, an upstream call,
every agent and judge of a swarm) is interrupted at once and its cleanup runs: a waiter leaves
the queue, a slot is freed, an upstream connection is closed. The cancelled handler turns the
cancellation back into an answer (``settle``; ``app.Handled``), a stream into its terminal event
(``sse.SSEResponse``). Nothing here writes bytes or records anything.

A request that carries no deadline, under the gateway's own server, costs one small object and
two dictionary writes: no task, no timer.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from starlette.types import Receive, Scope

from local_lattice.errors import ClientClosedRequest, DeadlineExceeded, LatticeError

LIFE = "lattice.life"  # where the lifeline sits in ``scope["state"]``
EXTENSION = "lattice.lifeline"  # a server advertising it calls ``end`` itself when a client leaves
# What the gateway's server puts in ``scope["extensions"]`` (read-only: one mapping for all requests).
SERVER_EXTENSIONS: Mapping[str, Mapping[str, Any]] = MappingProxyType({EXTENSION: MappingProxyType({})})


def deadline_error() -> DeadlineExceeded:
    return DeadlineExceeded("the request's deadline passed before its answer was complete")


class Lifeline:
    __slots__ = ("_deadline", "_task", "_timer", "_watcher", "ending")

    def __init__(self, task: asyncio.Task[Any] | None) -> None:
        self._task = task
        self.ending: LatticeError | None = None
        self._deadline: float | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._watcher: asyncio.Future[None] | None = None

    @classmethod
    def arm(cls, scope: Scope, receive: Receive) -> Lifeline:
        """The lifeline of the request the current task serves."""
        life = cls(asyncio.current_task())
        scope["state"][LIFE] = life
        extensions = scope.get("extensions")
        if not extensions or EXTENSION not in extensions:
            life._watcher = asyncio.ensure_future(life._watch(receive))
        return life

    @staticmethod
    def of(scope: Scope) -> Lifeline | None:
        state = scope.get("state")
        found: Lifeline | None = None if state is None else state.get(LIFE)
        return found

    def bound(self, deadline: float | None) -> None:
        """End the request with ``DeadlineExceeded`` at ``deadline`` (``time.monotonic`` seconds)."""
        if deadline is None or self._task is None or (self._deadline is not None and self._deadline <= deadline):
            return
        if self._timer is not None:
            self._timer.cancel()
        self._deadline = deadline
        delay = max(deadline - time.monotonic(), 0.0)
        self._timer = asyncio.get_running_loop().call_later(delay, self._expire)

    def overdue(self) -> bool:
        return self._deadline is not None and time.monotonic() >= self._deadline

    def check(self) -> None:
        """Raise ``DeadlineExceeded`` if the deadline has passed: an answer finished a moment after
        it (before its timer ran) is not given as a success."""
        if self._deadline is not None and time.monotonic() >= self._deadline:
            raise deadline_error()

    def end(self, ending: LatticeError) -> None:
        """End the request now with ``ending``; the first ending wins, and an ended or disarmed
        request ignores the call."""
        if self.ending is not None or self._task is None:
            return
        self.ending = ending
        self._task.cancel()

    def follow(self, task: asyncio.Task[Any]) -> None:
        """A stream's pump has taken over the work: an ending now cancels it."""
        if self._task is not None:
            self._task = task

    def settle(self) -> LatticeError:
        """In the cancelled task, once its cancellation was caught: withdraw it and return the
        ending it stood for."""
        assert self.ending is not None
        task = asyncio.current_task()
        if task is not None and task.cancelling():
            task.uncancel()
        return self.ending

    def disarm(self) -> None:
        """The request's work is over: nothing may end it any more."""
        self._task = None
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._watcher is not None:
            self._watcher.cancel()
            self._watcher = None

    def _expire(self) -> None:
        self._timer = None
        self.end(deadline_error())

    async def _watch(self, receive: Receive) -> None:
        while (await receive())["type"] != "http.disconnect":
            pass
        self.end(ClientClosedRequest("the client closed the connection"))
