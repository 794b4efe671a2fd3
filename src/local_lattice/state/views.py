"""What every replica sees alike: backends cooling down and the dashboard's preferences.

A replica that puts a backend on cool-down (failures in a row, a failed health check) announces it;
every replica then skips the backend for the same time and probes it itself when the time is up.
Preferences set on one replica's dashboard are kept in the store and announced; every replica
takes them, also one that starts later or returns after losing the store. Nothing here is on a
request's path: announcements arrive over the store's one pub/sub connection.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

import orjson
from pydantic import ValidationError

from local_lattice.failover import BackendTracker
from local_lattice.preferences import Preferences
from local_lattice.state.store import PREFIX, Store

log = logging.getLogger("lattice.state")

COOLDOWNS = PREFIX + "cooldown"
PREFERENCES = PREFIX + "preferences"


class SharedViews:
    """Cool-downs and preferences shared through ``store`` (see the module)."""

    def __init__(
        self,
        store: Store,
        tracker: BackendTracker,
        preferences: Callable[[], Preferences],
        set_preferences: Callable[[Preferences], None],
    ) -> None:
        self.store = store
        self.tracker = tracker
        self._get = preferences
        self._set = set_preferences
        self._tasks: set[asyncio.Task[Any]] = set()
        tracker.announce = self._cooling
        store.subscribe(COOLDOWNS, self._cooled_elsewhere)
        store.subscribe(PREFERENCES, self._preferences_changed)

    def _spawn(self, work: Any) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _cooling(self, backend: str, seconds: float) -> None:
        message = orjson.dumps({"backend": backend, "seconds": seconds, "from": self.store.replica})
        self._spawn(self.store.publish(COOLDOWNS, message))

    def _cooled_elsewhere(self, data: bytes | None) -> None:
        if data is None:
            return
        try:
            news = orjson.loads(data)
            if news["from"] != self.store.replica:
                self.tracker.cool(str(news["backend"]), float(news["seconds"]))
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            log.warning("ignored a malformed cool-down announcement")

    def publish_preferences(self, preferences: Preferences) -> None:
        """Keep ``preferences`` in the store and tell every replica."""
        self._spawn(self._store_preferences(preferences.model_dump_json().encode()))

    async def _store_preferences(self, data: bytes) -> None:
        try:
            await asyncio.wait_for(self.store.client.set(PREFERENCES, data), self.store.timeout)
        except Exception as exc:
            self.store.lose(exc)
            return
        await self.store.publish(PREFERENCES, b"1")

    def _preferences_changed(self, data: bytes | None) -> None:
        self._spawn(self.load_preferences())  # also after (re)subscribing: a change may have been missed

    async def load_preferences(self) -> None:
        """Take the preferences kept in the store, if any."""
        try:
            data = await asyncio.wait_for(self.store.client.get(PREFERENCES), self.store.timeout)
        except Exception as exc:
            self.store.lose(exc)
            return
        if data is None:
            return
        try:
            found = Preferences.model_validate_json(data)
        except ValidationError:
            log.warning("ignored malformed preferences in the store")
            return
        if found != self._get():
            self._set(found)

    async def aclose(self) -> None:
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=1.0)
