"""Per-key and per-IP requests and tokens per minute, counted in a shared store across replicas.

Each budget is the same token bucket as ``security.limits`` (one minute's worth, refilled
continuously), kept in a Redis hash and checked and taken for all of a request's buckets in one
Lua call, on the store's clock (replicas' clocks may differ). Concurrency (requests in flight)
stays per replica. The same call records the replica as alive, so every replica knows how many
share the limits.

Losing the store (an error, or no answer within ``timeout_ms``; see ``state.store``) never fails a
request: the replica counts locally with each budget divided by the replicas last seen alive, and
tries the store again a second later; the first call that works rejoins the shared buckets.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from local_lattice.config import LimitsConfig, RateLimits
from local_lattice.errors import RateLimited
from local_lattice.security.limits import Limiter, Ticket, refusal
from local_lattice.state.store import ALIVE_MS, PREFIX, Store

# KEYS: the buckets, then the replicas' set. ARGV: replica id, bucket count, then per bucket:
# capacity, refill per ms, amount to take. Returns {refused bucket (1-based, 0 = none), wait ms,
# replicas alive}. Nothing is taken unless every bucket has room.
ADMIT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local n = tonumber(ARGV[2])
local alive = KEYS[n + 1]
redis.call('ZADD', alive, now, ARGV[1])
redis.call('ZREMRANGEBYSCORE', alive, '-inf', now - tonumber(ARGV[3 * n + 3]))
redis.call('PEXPIRE', alive, 60000)
local levels, refused, wait = {}, 0, 0
for i = 1, n do
  local cap, rate, amount = tonumber(ARGV[3 * i]), tonumber(ARGV[3 * i + 1]), tonumber(ARGV[3 * i + 2])
  local got = redis.call('HMGET', KEYS[i], 'level', 'stamp')
  local level, stamp = tonumber(got[1]) or cap, tonumber(got[2]) or now
  if now > stamp then level = math.min(cap, level + (now - stamp) * rate) end
  levels[i] = level
  local need = math.min(amount, cap)
  if level < need then
    wait = math.max(wait, (need - level) / rate)
    if refused == 0 then refused = i end
  end
end
if refused == 0 then
  for i = 1, n do
    redis.call('HSET', KEYS[i], 'level', tostring(levels[i] - tonumber(ARGV[3 * i + 2])), 'stamp', now)
    redis.call('PEXPIRE', KEYS[i], 120000)
  end
end
return {refused, tostring(wait), redis.call('ZCARD', alive)}
"""

# KEYS[1]: a tokens bucket. ARGV: capacity, tokens to give back (negative: charge more).
GIVE_BACK = """
local level = tonumber(redis.call('HGET', KEYS[1], 'level'))
if level then redis.call('HSET', KEYS[1], 'level', tostring(math.min(tonumber(ARGV[1]), level + tonumber(ARGV[2])))) end
return 0
"""


@dataclass(frozen=True, slots=True)
class Bucket:
    key: str
    capacity: float
    amount: float
    code: str  # what a refusal names: key_requests_per_minute …


@dataclass(slots=True)
class SharedTicket:
    """What one admitted request holds: its local concurrency ticket, and either the shared token
    buckets to correct afterwards or the local fallback's ticket."""

    concurrency: Ticket
    tokens: int
    shared: list[Bucket] = field(default_factory=list)
    fallback: Ticket | None = None


def _rates_only(limits: RateLimits, share: float = 1.0) -> RateLimits:
    return RateLimits(
        requests_per_minute=limits.requests_per_minute / share, tokens_per_minute=limits.tokens_per_minute / share
    )


def _concurrency_only(limits: RateLimits) -> RateLimits:
    return RateLimits(concurrent=limits.concurrent)


class SharedLimiter:
    """The rate limits of ``limits`` counted in ``store`` (see the module)."""

    def __init__(self, limits: LimitsConfig, store: Store) -> None:
        self.limits = limits
        self.store = store
        self.local = Limiter(limits.per_key, limits.per_ip, limits.keys, limits.max_tracked_clients)
        self.concurrency = self._limiter(_concurrency_only)
        self.fallback = self._limiter(_rates_only)
        self._admit = store.script(ADMIT)
        self._give_back = store.script(GIVE_BACK)
        store.on_loss(self._divide)

    def _divide(self, replicas: int) -> None:
        self.fallback = self._limiter(_rates_only, float(replicas))

    def _limiter(self, part: Any, *args: float) -> Limiter:
        limits = self.limits
        overrides = {name: part(rl, *args) for name, rl in limits.keys.items()}
        return Limiter(part(limits.per_key, *args), part(limits.per_ip, *args), overrides, limits.max_tracked_clients)

    @property
    def enabled(self) -> bool:
        return self.local.enabled

    @property
    def counts_tokens(self) -> bool:
        return self.local.counts_tokens

    @property
    def degraded(self) -> bool:
        return self.store.degraded

    def _buckets(self, key_name: str, client: str, tokens: int) -> list[Bucket]:
        found = []
        for scope, who, limits in (
            ("key", key_name, self.limits.keys.get(key_name, self.limits.per_key)),
            ("ip", client, self.limits.per_ip),
        ):
            for what, budget, amount in (
                ("requests_per_minute", limits.requests_per_minute, 1.0),
                ("tokens_per_minute", limits.tokens_per_minute, float(tokens)),
            ):
                if budget:
                    found.append(Bucket(f"{PREFIX}rl:{scope}:{who}:{what}", budget, amount, f"{scope}_{what}"))
        return found

    async def admit(self, key_name: str, client: str, tokens: int, now: float) -> SharedTicket:
        """Admit one request or raise ``RateLimited`` (then nothing is held, here or in the store)."""
        ticket = SharedTicket(self.concurrency.admit(key_name, client, tokens, now), tokens)
        try:
            buckets = self._buckets(key_name, client, tokens)
            if buckets and not await self._shared(buckets, key_name, client):
                ticket.fallback = self.fallback.admit(key_name, client, tokens, now)
            elif buckets:
                ticket.shared = [b for b in buckets if b.code.endswith("tokens_per_minute")]
        except BaseException:
            self.concurrency.release(ticket.concurrency, None, now)
            raise
        return ticket

    async def _shared(self, buckets: list[Bucket], key_name: str, client: str) -> bool:
        """Check and take ``buckets`` in the store: True when it answered (refusals raise), False when
        it is lost and the local fallback must decide."""
        store = self.store
        if not store.usable:
            return False
        args: list[Any] = [store.replica, len(buckets)]
        for b in buckets:
            args += [b.capacity, b.capacity / 60_000, b.amount]
        args.append(ALIVE_MS)
        answer = await store.run(self._admit, [b.key for b in buckets] + [PREFIX + "replicas"], args)
        if answer is None:
            return False
        refused, wait_ms, replicas = answer
        store.rejoin(int(replicas))
        if int(refused):
            wait = float(wait_ms) / 1000
            code = buckets[int(refused) - 1].code
            raise RateLimited(refusal(code, key_name, client, wait), retry_after=max(wait, 0.001), code=code)
        return True

    async def release(self, ticket: SharedTicket, used_tokens: int | None, now: float) -> None:
        """The request ended; its real token usage corrects the shared (or local) buckets."""
        self.concurrency.release(ticket.concurrency, None, now)
        if ticket.fallback is not None:
            self.fallback.release(ticket.fallback, used_tokens, now)
        if used_tokens is None or not ticket.shared or self.store.degraded:
            return
        for bucket in ticket.shared:
            given = await self.store.run(self._give_back, [bucket.key], [bucket.capacity, ticket.tokens - used_tokens])
            if given is None:
                return
