"""Fleet choice: which copy of a model id serves a request when several backends serve that id.

Pure functions, no I/O, no clock, no state of their own (the live numbers arrive as ``Member``
values, built by ``routing.fleet_state``):

- ``session_key``: what ties a request to a conversation — the ``X-Session-Id`` header, the body's
  ``prompt_cache_key`` or ``user``, else a hash of the conversation's start (system prompt and first
  user turn; the first characters of a ``prompt``).
- ``rendezvous``: backend names ordered by a hash of (key, name). Every gateway replica computes the
  same order with no shared state, and a backend leaving moves only the sessions it held.
- ``affinity``: consistent hashing with bounded load — the session's backend unless it carries more
  than ``factor`` times the mean outstanding requests (rounded up), then the next in rendezvous order.
- ``least_loaded``: power of two choices, each weighed by outstanding requests times measured latency.
- ``round_robin``: in turn.
- ``slow_start_weight``: a backend back from a cool-down takes a growing share over a window.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import orjson

from local_lattice.types import Endpoint

SESSION_HEADER = "x-session-id"
PROMPT_PREFIX_CHARS = 4096  # of a plain ``prompt``: a conversation grows at its end, its start stays
MIN_WEIGHT = 0.1  # a recovering backend gets some traffic from the first moment of its slow start
MIN_LATENCY = 1e-4  # seconds: keeps weights positive for backends that answer in no measurable time

Outcome = Literal["hit", "new", "moved", "spilled"]


@dataclass(frozen=True, slots=True)
class SessionKey:
    """Where a request's affinity comes from and the 16-byte digest it hashes to."""

    source: str  # "x-session-id" | "prompt_cache_key" | "user" | "prefix"
    digest: bytes

    @property
    def hex(self) -> str:
        return self.digest.hex()


@dataclass(frozen=True, slots=True)
class Member:
    """One equally good copy of the requested id, with the live figures the choice reads."""

    name: str
    outstanding: int = 0
    latency: float | None = None  # EWMA seconds to the first byte; None before any answer
    weight: float = 1.0  # slow start: (0, 1]


def _digest(data: bytes) -> bytes:
    return hashlib.blake2b(data, digest_size=16).digest()


def conversation_prefix(body: Mapping[str, Any]) -> bytes | None:
    """The start of the conversation: every message up to and including the first user turn (the
    system prompt and the task), or the first characters of a plain ``prompt``."""
    messages = body.get("messages")
    if isinstance(messages, list) and messages:
        start: list[Any] = []
        for message in messages:
            if not isinstance(message, dict):
                break
            start.append((message.get("role"), message.get("content")))
            if message.get("role") == "user":
                break
        return orjson.dumps(start) if start else None
    prompt = body.get("prompt")
    if isinstance(prompt, str) and prompt:
        return prompt[:PROMPT_PREFIX_CHARS].encode("utf-8", "surrogatepass")
    return None


def session_key(endpoint: Endpoint, body: Mapping[str, Any], headers: Mapping[str, str]) -> SessionKey | None:
    """The request's session, or None (embeddings have no conversation to keep together)."""
    if endpoint == "embeddings":
        return None
    named = headers.get(SESSION_HEADER)
    if named:
        return SessionKey(SESSION_HEADER, _digest(named.encode("utf-8", "surrogatepass")))
    for field in ("prompt_cache_key", "user"):
        value = body.get(field)
        if isinstance(value, str) and value:
            return SessionKey(field, _digest(value.encode("utf-8", "surrogatepass")))
    prefix = conversation_prefix(body)
    return None if prefix is None else SessionKey("prefix", _digest(prefix))


def _score(digest: bytes, name: str) -> int:
    return int.from_bytes(hashlib.blake2b(digest + name.encode(), digest_size=8).digest(), "big")


def rendezvous(digest: bytes, names: Sequence[str]) -> list[str]:
    """``names`` by descending hash of (digest, name): the first is the key's home."""
    return sorted(names, key=lambda name: _score(digest, name), reverse=True)


def capacity(members: Sequence[Member], factor: float) -> int:
    """Outstanding requests one backend may carry before a session spills past it: ``factor`` times
    the mean load counting this request, rounded up, at least one."""
    total = sum(m.outstanding for m in members) + 1
    return max(1, math.ceil(factor * total / len(members)))


def affinity(
    digest: bytes, members: Sequence[Member], factor: float, placed: str | None = None
) -> tuple[list[Member], Outcome]:
    """``members`` ordered for a session (the chosen one first, then rendezvous order) and why.

    ``placed`` is the backend the session was last placed on, if this gateway remembers one: it
    keeps the session while it is a member with room (``hit``). Otherwise the first member in
    rendezvous order with room takes it: ``new`` when that is its home and it had none, ``moved``
    when its backend is gone, ``spilled`` when the backend it belongs to is full (a spill is not
    remembered: the session returns when there is room)."""
    cap = capacity(members, factor)
    by_name = {m.name: m for m in members}

    def room(m: Member) -> bool:
        return m.outstanding < max(1, math.floor(cap * m.weight))

    order = rendezvous(digest, list(by_name))
    current = by_name.get(placed) if placed is not None else None
    outcome: Outcome
    if current is not None and room(current):
        chosen, outcome = current.name, "hit"
    else:
        chosen = next((name for name in order if room(by_name[name])), order[0])
        spilled = current is not None or chosen != order[0]
        outcome = "spilled" if spilled else ("moved" if placed is not None else "new")
    ranked = [by_name[chosen], *(by_name[name] for name in order if name != chosen)]
    return ranked, outcome


def _cost(member: Member, default_latency: float) -> float:
    latency = member.latency if member.latency is not None else default_latency
    return (member.outstanding + 1) * max(latency, MIN_LATENCY) / member.weight


def least_loaded(members: Sequence[Member], pick: Callable[[int], int]) -> list[Member]:
    """Power of two choices: two members drawn with ``pick(n) -> 0..n-1``, the one with the lower
    (outstanding + 1) * latency / weight first (the first drawn on a tie), the rest by that cost.
    A member not yet timed is costed at the mean latency of those that are."""
    if len(members) < 2:
        return list(members)
    timed = [m.latency for m in members if m.latency is not None]
    default = sum(timed) / len(timed) if timed else 1.0
    first_index = pick(len(members))
    second_index = pick(len(members) - 1)
    if second_index >= first_index:
        second_index += 1
    a, b = members[first_index], members[second_index]
    first = a if _cost(a, default) <= _cost(b, default) else b
    rest = sorted((m for m in members if m is not first), key=lambda m: _cost(m, default))
    return [first, *rest]


def round_robin(members: Sequence[Member], turn: int) -> list[Member]:
    """Members rotated so that turn ``k`` starts with the ``k``-th."""
    if not members:
        return []
    start = turn % len(members)
    return [*members[start:], *members[:start]]


def slow_start_weight(recovered_at: float | None, now: float, window: float) -> float:
    """A backend re-admitted ``now - recovered_at`` seconds ago takes that share of ``window``
    (at least ``MIN_WEIGHT``); any other takes a full share."""
    if recovered_at is None or window <= 0:
        return 1.0
    elapsed = now - recovered_at
    if elapsed >= window:
        return 1.0
    return max(MIN_WEIGHT, elapsed / window)
