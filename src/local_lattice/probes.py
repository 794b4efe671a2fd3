"""Active health checks of the backends that share a model id with others (the fleet's members).

Every ``interval`` seconds each member not cooling down is asked for its health (``Probed.probe``:
its model list fetched afresh), within ``timeout``: one that fails is put on a cool-down at once
(``BackendTracker.eject``), one that had failed requests and answers again counts as healthy. No
answer in time from a member with calls in flight proves nothing: some servers (llama-cpp-python's)
list their models only between requests, and a busy server is not a dead one. Cool-
downs that ended are probed as they always are (``BackendTracker.readmit``); a member re-admitted
that way starts slowly (``routing.fleet.slow_start_weight``). A backend alone with its models is
never probed here: it pays nothing for the fleet. One task, started and stopped by the gateway.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping
from typing import Literal

from local_lattice.backends.base import Backend, Probed
from local_lattice.failover import BackendTracker

log = logging.getLogger("lattice.probes")


class HealthChecks:
    def __init__(
        self,
        tracker: BackendTracker,
        backends: Mapping[str, Backend],
        members: Callable[[], list[str]],
        interval: float,
        timeout: float = 5.0,
    ) -> None:
        self.tracker = tracker
        self.backends = backends
        self.members = members
        self.interval = interval
        self.timeout = timeout
        self._task: asyncio.Task[None] | None = None

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def start(self) -> None:
        if self.interval > 0 and self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._loop(), name="lattice-health-checks")

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.check()
            except Exception:  # one bad round must not end the checks
                log.exception("health check round failed")

    async def check(self) -> None:
        """One round: re-admit ended cool-downs, probe every other member."""
        tracker = self.tracker
        if tracker.cooling_until:
            await tracker.readmit(self.backends)
        names = [n for n in self.members() if n in self.backends and not tracker.cooling(n)]
        results = await asyncio.gather(*(self._probe(n) for n in names))
        for name, verdict in zip(names, results, strict=True):
            if verdict == "failed":
                log.warning("backend %s failed its health check: cooling down for %gs", name, tracker.cooldown)
                tracker.eject(name)
            elif verdict == "ok" and tracker.failures.get(name):
                tracker.succeeded(name)

    async def _probe(self, name: str) -> Literal["ok", "failed", "busy"]:
        backend = self.backends[name]
        check = backend.probe() if isinstance(backend, Probed) else backend.health()
        try:
            health = await asyncio.wait_for(check, self.timeout)
        except TimeoutError:
            return "busy" if self.tracker.in_flight.get(name) else "failed"
        return "ok" if health.ok else "failed"

    async def aclose(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
