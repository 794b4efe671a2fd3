"""Per-key and per-client-address rate limits as pure decisions over a clock the caller passes in.

Each identity (an API key's name, a client address) has up to three budgets:

- requests per minute and tokens per minute, each a token bucket holding one minute's worth
  (so the burst is one minute's budget and over any window of ``t`` seconds at most
  ``capacity + rate * t`` is admitted);
- requests in flight, a counter.

``admit`` checks every budget before taking from any (a refused request costs nothing) and raises
``RateLimited`` with the time until *all* buckets have room, so ``Retry-After`` is truthful. A
request's tokens are estimated up front; ``release`` corrects the bucket with the real usage, which
may drive it below zero (the next requests then wait for the debt). A request larger than a whole
bucket is admitted when the bucket is full rather than never. Client-address entries are kept in
LRU order and the idle oldest dropped beyond ``max_clients``, so memory stays bounded.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field

from local_lattice.config import RateLimits
from local_lattice.errors import RateLimited

# Concurrency frees up when some request ends, which no clock can predict: a short, honest guess.
CONCURRENCY_RETRY_SECONDS = 1.0


@dataclass(slots=True)
class TokenBucket:
    """A budget that refills at ``rate`` per second up to ``capacity``."""

    capacity: float
    rate: float  # units per second
    level: float
    stamp: float

    @classmethod
    def per_minute(cls, budget: float, now: float) -> TokenBucket:
        return cls(capacity=budget, rate=budget / 60.0, level=budget, stamp=now)

    def refill(self, now: float) -> None:
        if now > self.stamp:
            self.level = min(self.capacity, self.level + (now - self.stamp) * self.rate)
            self.stamp = now

    def wait(self, amount: float, now: float) -> float:
        """Seconds until ``amount`` (at most a full bucket) can be taken; 0 when it can be now."""
        self.refill(now)
        need = min(amount, self.capacity)
        return 0.0 if self.level >= need else (need - self.level) / self.rate

    def take(self, amount: float, now: float) -> None:
        self.refill(now)
        self.level -= amount

    def give_back(self, amount: float, now: float) -> None:
        """Correct an estimate: positive returns units, negative charges more (the level may go below 0)."""
        self.refill(now)
        self.level = min(self.capacity, self.level + amount)


@dataclass(slots=True)
class _Budgets:
    requests: TokenBucket | None
    tokens: TokenBucket | None
    concurrent: int
    inflight: int = 0


@dataclass(slots=True)
class Ticket:
    """What one admitted request holds; hand it back to ``release``."""

    held: list[_Budgets] = field(default_factory=list)
    tokens: int = 0


def _budgets(limits: RateLimits, now: float) -> _Budgets:
    return _Budgets(
        requests=TokenBucket.per_minute(limits.requests_per_minute, now) if limits.requests_per_minute else None,
        tokens=TokenBucket.per_minute(limits.tokens_per_minute, now) if limits.tokens_per_minute else None,
        concurrent=limits.concurrent,
    )


def _active(limits: RateLimits) -> bool:
    return bool(limits.requests_per_minute or limits.tokens_per_minute or limits.concurrent)


class Limiter:
    """Rate limits per key and per client address (requests and tokens per minute), with per-key
    overrides; the least recently seen clients are forgotten past ``max_clients``."""

    def __init__(
        self,
        per_key: RateLimits,
        per_ip: RateLimits,
        overrides: Mapping[str, RateLimits] | None = None,
        max_clients: int = 10000,
    ) -> None:
        self.per_key = per_key
        self.per_ip = per_ip
        self.overrides = dict(overrides or {})
        self.max_clients = max_clients
        self._keys: dict[str, _Budgets] = {}
        self._clients: OrderedDict[str, _Budgets] = OrderedDict()

    @property
    def enabled(self) -> bool:
        return _active(self.per_key) or _active(self.per_ip) or any(_active(o) for o in self.overrides.values())

    @property
    def counts_tokens(self) -> bool:
        limits = (self.per_key, self.per_ip, *self.overrides.values())
        return any(limit.tokens_per_minute for limit in limits)

    def _key_budgets(self, name: str, now: float) -> _Budgets | None:
        limits = self.overrides.get(name, self.per_key)
        if not _active(limits):
            return None
        found = self._keys.get(name)
        if found is None:
            found = self._keys[name] = _budgets(limits, now)
        return found

    def _client_budgets(self, client: str, now: float) -> _Budgets | None:
        if not _active(self.per_ip):
            return None
        found = self._clients.get(client)
        if found is None:
            found = self._clients[client] = _budgets(self.per_ip, now)
            self._forget_idle()
        else:
            self._clients.move_to_end(client)
        return found

    def _forget_idle(self) -> None:
        excess = len(self._clients) - self.max_clients
        for client in list(self._clients)[:excess]:
            if self._clients[client].inflight == 0:
                del self._clients[client]

    def admit(self, key_name: str, client: str, tokens: int, now: float) -> Ticket:
        """Admit one request estimated at ``tokens`` or raise ``RateLimited`` (nothing is taken then)."""
        checks = [
            (budgets, scope)
            for budgets, scope in ((self._key_budgets(key_name, now), "key"), (self._client_budgets(client, now), "ip"))
            if budgets is not None
        ]
        refused: str | None = None
        wait = 0.0
        for budgets, scope in checks:
            for what, needed in (
                ("concurrent_requests", 0.0),
                ("requests_per_minute", 1.0),
                ("tokens_per_minute", tokens),
            ):
                delay = self._delay(budgets, what, needed, now)
                if delay > 0:
                    refused = refused or f"{scope}_{what}"
                    wait = max(wait, delay)
        if refused is not None:
            raise RateLimited(refusal(refused, key_name, client, wait), retry_after=wait, code=refused)
        ticket = Ticket(tokens=tokens)
        for budgets, _ in checks:
            budgets.inflight += 1
            if budgets.requests is not None:
                budgets.requests.take(1, now)
            if budgets.tokens is not None:
                budgets.tokens.take(tokens, now)
            ticket.held.append(budgets)
        return ticket

    @staticmethod
    def _delay(budgets: _Budgets, what: str, needed: float, now: float) -> float:
        if what == "concurrent_requests":
            full = budgets.concurrent and budgets.inflight >= budgets.concurrent
            return CONCURRENCY_RETRY_SECONDS if full else 0.0
        bucket = budgets.requests if what == "requests_per_minute" else budgets.tokens
        return 0.0 if bucket is None else bucket.wait(needed, now)

    def release(self, ticket: Ticket, used_tokens: int | None, now: float) -> None:
        """The request ended; ``used_tokens`` (real usage, when known) corrects the estimate."""
        for budgets in ticket.held:
            budgets.inflight -= 1
            if budgets.tokens is not None and used_tokens is not None:
                budgets.tokens.give_back(ticket.tokens - used_tokens, now)
        ticket.held.clear()


def refusal(refused: str, key_name: str, client: str, wait: float) -> str:
    """The 429 message for the budget ``refused`` (``key_requests_per_minute`` …)."""
    scope, _, what = refused.partition("_")
    who = f"API key {key_name!r}" if scope == "key" else f"client {client}"
    limit = what.replace("_", " ")
    return f"rate limit reached: {limit} for {who}; retry in {math.ceil(wait)} s"
