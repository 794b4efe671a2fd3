"""The fleet's live state and the step that applies a fleet choice to a resolution.

Owns, per backend that shares a model id with another: the latency EWMA (seconds to the first
byte), affinity outcomes and hedges started and won; where each session was last placed (a bounded
LRU, so a session that moved off a failed backend stays where it went); the round-robin turn of
each id. ``Fleet.arrange`` orders the copies of a resolution's chosen id with ``routing.fleet``.

Built by the gateway from the config (never module-level). It reads the backends' outstanding
counts and health from the caller (the failover tracker, as a ``Live`` value) and does no I/O.
"""

from __future__ import annotations

import random
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from local_lattice.config import RoutingConfig
from local_lattice.routing.fleet import (
    Member,
    Outcome,
    SessionKey,
    affinity,
    least_loaded,
    round_robin,
    session_key,
    slow_start_weight,
)
from local_lattice.routing.resolver import Resolution
from local_lattice.types import Endpoint, FleetRow, ModelInfo

EWMA_ALPHA = 0.3  # weight of the newest latency sample
MAX_SESSIONS = 65536  # placements remembered; the oldest is forgotten first

Balance = Literal["affinity", "least_loaded", "round_robin"]


@dataclass(slots=True)
class Figures:
    """One backend's fleet figures."""

    latency: float | None = None
    affinity: dict[str, int] = field(default_factory=dict)
    hedges_started: int = 0
    hedges_won: int = 0


@dataclass(frozen=True, slots=True)
class Live:
    """What the failover tracker knows at this moment."""

    in_flight: Mapping[str, int]
    failures: Mapping[str, int]
    recovered_at: Mapping[str, float]
    now: float


@dataclass(frozen=True, slots=True)
class Placement:
    """How the fleet ordered one request: which rule decided, and the session it kept together."""

    how: str  # "affinity" | "least-loaded" | "round-robin"
    session: SessionKey | None = None
    outcome: Outcome | None = None


def _load_rank(model: ModelInfo) -> int:
    return 0 if model.loaded else (1 if model.loaded is None else 2)


def _copies(candidates: tuple[ModelInfo, ...], failures: Mapping[str, int]) -> int:
    """How many leading candidates are equally good copies of the first one's id: the same id,
    the same health and the same loaded state (the resolver has put the better ones first)."""
    first = candidates[0]
    key = first.id.lower()
    healthy = not failures.get(first.backend)
    rank = _load_rank(first)
    count = 1
    for model in candidates[1:]:
        if model.id.lower() != key or (not failures.get(model.backend)) != healthy or _load_rank(model) != rank:
            break
        count += 1
    return count


class Fleet:
    """Live per-backend figures and session placements; ``arrange`` applies the fleet choice."""

    def __init__(
        self,
        balance: Balance = "affinity",
        load_factor: float = 1.25,
        slow_start: float = 30.0,
        *,
        rng: random.Random | None = None,
        max_sessions: int = MAX_SESSIONS,
    ) -> None:
        self.balance = balance
        self.load_factor = load_factor
        self.slow_start = slow_start
        self.rng = rng or random.Random()
        self.max_sessions = max_sessions
        self.figures: dict[str, Figures] = {}
        self.placed: OrderedDict[bytes, str] = OrderedDict()
        self.turns: dict[str, int] = {}
        # Ids once served by several equally good backends: still arranged when one copy is left, so
        # a session that moves off a failed backend is placed where it went and stays when it is back.
        self.ids: set[str] = set()

    @classmethod
    def of(cls, routing: RoutingConfig) -> Fleet:
        return cls(routing.balance, routing.affinity_load_factor, routing.slow_start_seconds)

    # -- what happened -----------------------------------------------------------------------------

    def _figures(self, name: str) -> Figures:
        found = self.figures.get(name)
        if found is None:
            found = self.figures[name] = Figures()
        return found

    def answered(self, name: str, seconds: float) -> None:
        """A call to ``name`` sent its first byte after ``seconds`` (or lost a hedge after as long)."""
        figures = self._figures(name)
        previous = figures.latency
        figures.latency = seconds if previous is None else previous + EWMA_ALPHA * (seconds - previous)

    def hedge_started(self, name: str) -> None:
        self._figures(name).hedges_started += 1

    def hedge_won(self, name: str) -> None:
        self._figures(name).hedges_won += 1

    def members(self) -> list[str]:
        """Every backend seen sharing an id with another (what active health checks probe)."""
        return list(self.figures)

    def rows(self, in_flight: Mapping[str, int]) -> list[FleetRow]:
        return [
            FleetRow(name, in_flight.get(name, 0), f.latency, dict(f.affinity), f.hedges_started, f.hedges_won)
            for name, f in self.figures.items()
        ]

    # -- the choice ----------------------------------------------------------------------------------

    def arrange(
        self,
        resolution: Resolution,
        endpoint: Endpoint,
        body: Mapping[str, Any] | None,
        headers: Mapping[str, str],
        live: Live,
        *,
        record: bool = True,
    ) -> tuple[Resolution, Placement | None]:
        """``resolution`` with the equally good copies of its chosen id in fleet order, and how they
        were ordered; unchanged (and None) when the chosen id has no such copies and never had.
        ``record=False`` (a dry run) decides the same way but remembers nothing."""
        candidates = resolution.candidates
        count = _copies(candidates, live.failures) if len(candidates) > 1 else 1
        model = candidates[0].id.lower()
        if count < 2 and model not in self.ids:
            return resolution, None
        if count > 1 and record:
            self.ids.add(model)
        members = [
            Member(
                m.backend,
                live.in_flight.get(m.backend, 0),
                self.figures[m.backend].latency if m.backend in self.figures else None,
                slow_start_weight(live.recovered_at.get(m.backend), live.now, self.slow_start),
            )
            for m in candidates[:count]
        ]
        if record:
            for member in members:
                self._figures(member.name)
        ordered, placement = self._choose(model, members, endpoint, body, headers, record)
        by_backend = {m.backend: m for m in candidates[:count]}
        arranged = (*(by_backend[m.name] for m in ordered), *candidates[count:])
        chosen = arranged[0]
        head = resolution.explanation or f"{resolution.requested or chosen.id} -> {chosen.id}"
        detail = f"{placement.session.source}, {placement.outcome}" if placement.session else f"among {count}"
        text = f"{head}; on {chosen.backend} by {placement.how} ({detail})"
        explanation = text.encode("ascii", "backslashreplace").decode("ascii")
        return replace(resolution, candidates=arranged, explanation=explanation), placement

    def _choose(
        self,
        model: str,
        members: list[Member],
        endpoint: Endpoint,
        body: Mapping[str, Any] | None,
        headers: Mapping[str, str],
        record: bool,
    ) -> tuple[list[Member], Placement]:
        if self.balance == "round_robin":
            turn = self.turns.get(model, 0)
            if record:
                self.turns[model] = turn + 1
            return round_robin(members, turn), Placement("round-robin")
        key = session_key(endpoint, body, headers) if self.balance == "affinity" and body is not None else None
        if key is None:
            return least_loaded(members, self.rng.randrange), Placement("least-loaded")
        ordered, outcome = affinity(key.digest, members, self.load_factor, self.placed.get(key.digest))
        if record:
            self._place(key, ordered[0].name, outcome)
        return ordered, Placement("affinity", key, outcome)

    def _place(self, key: SessionKey, backend: str, outcome: Outcome) -> None:
        figures = self._figures(backend)
        figures.affinity[outcome] = figures.affinity.get(outcome, 0) + 1
        placed = self.placed
        if outcome == "hit":
            placed.move_to_end(key.digest)
        elif outcome != "spilled":
            placed[key.digest] = backend
            placed.move_to_end(key.digest)
            while len(placed) > self.max_sessions:
                placed.popitem(last=False)
