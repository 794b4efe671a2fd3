"""Active health checks of the backends that share a model id with others (the fleet's members).

Every ``interval`` seconds each member not cooling down is asked for its health (its model list
fetched afresh), within ``timeout``: one that fails is put on a cool-down at once
(``BackendTracker.eject``), one that had failed requests and answers again counts as healthy. Cool-
downs that ended are probed as they always are (``BackendTracker.readmit``); a member re-admitted
that way starts slowly (``routing.fleet.slow_start_weight``). A backend alone with its models is
never probed here: it pays nothing for the fleet. One task, started and stopped by the gateway.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping

from local_lattice.backends.base import Backend
from local_lattice.failover import BackendTracker, ModelListCache

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
        results = await asyncio.gather(*(self._probe(self.backends[n]) for n in names))
        for name, ok in zip(names, results, strict=True):
            if not ok:
                log.warning("backend %s failed its health check: cooling down for %gs", name, tracker.cooldown)
                tracker.eject(name)
            elif tracker.failures.get(name):
                tracker.succeeded(name)

    async def _probe(self, backend: Backend) -> bool:
        if isinstance(backend, ModelListCache):
            backend.forget_models()
        try:
            health = await asyncio.wait_for(backend.health(), self.timeout)
        except TimeoutError:
            return False
        return health.ok

    async def aclose(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
