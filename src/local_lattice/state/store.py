"""One replica's link to the shared store (Redis or Valkey): the client, this replica's id, how many
replicas were seen alive, and whether the store is lost.

Every shared part (rate limits, concurrency leases) calls the store through ``run``: an error or no
answer within ``timeout_ms`` marks the store lost (logged once, ``degraded``), and the callers count
locally until a call a second later works again. A heartbeat every 2 s records this replica as
alive and learns how many are, so every replica divides a limit alike when the store is lost.
One pub/sub connection per replica carries what others announce (a slot freed, a backend cooling
down, new preferences) to the callbacks ``subscribe``d to each channel.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Callable, Sequence
from typing import Any

from local_lattice.config_state import StateConfig

log = logging.getLogger("lattice.state")

PREFIX = "lattice:"
ALIVE_MS = 15_000  # a replica not seen for this long no longer counts
RETRY_SECONDS = 1.0  # after losing the store, how long until a call tries it again
HEARTBEAT_SECONDS = 2.0

# KEYS[1]: the replicas' set. ARGV: replica id, ms a replica counts as alive. Returns replicas alive.
HEARTBEAT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZADD', KEYS[1], now, ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - tonumber(ARGV[2]))
redis.call('PEXPIRE', KEYS[1], 60000)
return redis.call('ZCARD', KEYS[1])
"""


class Store:
    """The shared store as this replica sees it (see the module)."""

    def __init__(self, state: StateConfig, client: Any = None) -> None:
        import redis.asyncio

        assert state.url is not None
        self.url = state.url
        self.timeout = state.timeout_ms / 1000
        self.client = client if client is not None else redis.asyncio.from_url(state.url, socket_connect_timeout=1)
        self._heartbeat = self.client.register_script(HEARTBEAT)
        self.replica = uuid.uuid4().hex
        self.replicas = 1  # replicas alive at the last call that reached the store
        self.degraded = False
        self._retry_at = 0.0
        self._on_loss: list[Callable[[int], None]] = []
        self._on_return: list[Callable[[], None]] = []
        self._channels: dict[str, Callable[[bytes | None], None]] = {}
        self._background: list[asyncio.Task[None]] = []

    def script(self, source: str) -> Any:
        return self.client.register_script(source)

    def on_loss(self, callback: Callable[[int], None]) -> None:
        """Call ``callback(replicas)`` when the store is lost (the share each limit is divided by)."""
        self._on_loss.append(callback)

    def on_return(self, callback: Callable[[], None]) -> None:
        self._on_return.append(callback)

    def subscribe(self, channel: str, callback: Callable[[bytes | None], None]) -> None:
        """Call ``callback(data)`` for every message on ``channel`` (``None`` after each (re)subscribe:
        messages may have been missed). Subscribe before ``start``."""
        self._channels[channel] = callback

    async def publish(self, channel: str, data: bytes) -> None:
        """Tell every replica (this one too); a lost store drops the message, it never raises."""
        try:
            await asyncio.wait_for(self.client.publish(channel, data), self.timeout)
        except Exception as exc:
            self.lose(exc)

    @property
    def usable(self) -> bool:
        """False while lost and the next try is not due yet: callers count locally without asking."""
        return not self.degraded or time.monotonic() >= self._retry_at

    async def run(self, script: Any, keys: Sequence[str], args: Sequence[Any]) -> Any | None:
        """Run a registered script; ``None`` when the store is lost (nothing is raised)."""
        try:
            return await asyncio.wait_for(script(keys=list(keys), args=list(args)), self.timeout)
        except Exception as exc:  # any failure of the store: the caller counts locally
            self.lose(exc)
            return None

    def lose(self, exc: BaseException) -> None:
        self._retry_at = time.monotonic() + RETRY_SECONDS
        if self.degraded:
            return
        self.degraded = True
        share = max(1, self.replicas)
        for callback in self._on_loss:
            callback(share)
        reason = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        log.warning(
            "shared state lost (%s): limits and caps are counted here, each divided by %d replicas", reason, share
        )

    def rejoin(self, replicas: int) -> None:
        self.replicas = replicas
        if self.degraded:
            self.degraded = False
            for callback in self._on_return:
                callback()
            log.warning("shared state back: limits and caps are counted across %d replicas again", replicas)

    async def beat(self) -> None:
        """Say this replica is alive and learn how many are; a lost store is noticed here too."""
        alive = await self.run(self._heartbeat, [PREFIX + "replicas"], [self.replica, ALIVE_MS])
        if alive is not None:
            self.rejoin(int(alive))

    async def _beat_forever(self) -> None:
        while True:
            await self.beat()
            await asyncio.sleep(HEARTBEAT_SECONDS)

    async def _listen_forever(self) -> None:
        while True:
            pubsub = self.client.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(*self._channels)
                for callback in self._channels.values():
                    callback(None)
                async for message in pubsub.listen():
                    told = self._channels.get(message.get("channel", b"").decode())
                    if message.get("type") == "message" and told is not None:
                        told(message["data"])
            except asyncio.CancelledError:
                raise
            except Exception:  # the store is away: try again in a second (waiters poll meanwhile)
                await asyncio.sleep(RETRY_SECONDS)
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()

    def start(self) -> None:
        """Keep the replica count fresh while serving (every replica then divides alike on a loss),
        and listen to the subscribed channels."""
        if self._background:
            return
        loop = asyncio.get_running_loop()
        self._background.append(loop.create_task(self._beat_forever()))
        if self._channels:
            self._background.append(loop.create_task(self._listen_forever()))

    def health(self) -> dict[str, Any]:
        return {"shared": True, "degraded": self.degraded, "replicas": self.replicas}

    async def aclose(self) -> None:
        for task in self._background:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.client.aclose()
