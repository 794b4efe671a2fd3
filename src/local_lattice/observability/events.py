"""What the dashboard shows over time: the ring of recent requests, recent swarm runs, and a
rolling series of fixed-width time buckets for its charts.

Everything here is bounded (deques with ``maxlen``) and only appended to on the event loop; the
snapshot turns it into JSON when the page asks, so the request path pays one append.
"""

from __future__ import annotations

import math
import random
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from local_lattice.observability.record import RequestRecord, SwarmRun

SAMPLES_PER_BUCKET = 512  # percentiles come from a uniform sample, so memory stays flat under load


def _sample(values: list[float], value: float, seen: int, rng: random.Random) -> None:
    if len(values) < SAMPLES_PER_BUCKET:
        values.append(value)
        return
    slot = rng.randrange(seen)  # reservoir sampling: every value so far kept with equal chance
    if slot < SAMPLES_PER_BUCKET:
        values[slot] = value


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    rank = max(0, math.ceil(q * len(ordered)) - 1)
    return ordered[rank]


@dataclass(slots=True)
class Bucket:
    index: int
    requests: int = 0
    errors: int = 0
    output_tokens: int = 0
    streams: int = 0
    latencies: list[float] = field(default_factory=list)
    ttfts: list[float] = field(default_factory=list)
    queue_depth: int = 0

    def as_point(self, step: float) -> dict[str, Any]:
        def ms(value: float | None) -> float | None:
            return None if value is None else round(value * 1000, 3)

        return {
            "t": self.index * step,
            "requests_per_s": round(self.requests / step, 3),
            "errors": self.errors,
            "latency_p50_ms": ms(percentile(self.latencies, 0.5)),
            "latency_p95_ms": ms(percentile(self.latencies, 0.95)),
            "ttft_p50_ms": ms(percentile(self.ttfts, 0.5)),
            "tokens_per_s": round(self.output_tokens / step, 2),
            "queue_depth": self.queue_depth,
        }


class Series:
    """Per-``step`` buckets over the last ``span`` seconds; empty buckets are filled in on read."""

    def __init__(self, step: float = 5.0, span: float = 360.0) -> None:
        self.step = step
        self.buckets: deque[Bucket] = deque(maxlen=int(span // step))
        self._rng = random.Random()

    def _current(self, now: float) -> Bucket:
        index = int(now // self.step)
        if not self.buckets or self.buckets[-1].index < index:
            self.buckets.append(Bucket(index, queue_depth=self.buckets[-1].queue_depth if self.buckets else 0))
        return self.buckets[-1]

    def add(self, rec: RequestRecord, now: float) -> None:
        bucket = self._current(now)
        bucket.requests += 1
        bucket.errors += rec.error_kind is not None
        bucket.output_tokens += rec.output_tokens
        _sample(bucket.latencies, rec.latency, bucket.requests, self._rng)
        if rec.ttft is not None:
            bucket.streams += 1
            _sample(bucket.ttfts, rec.ttft, bucket.streams, self._rng)

    def queue_depth(self, depth: int, now: float) -> None:
        bucket = self._current(now)
        bucket.queue_depth = max(bucket.queue_depth, depth)

    def points(self, now: float | None = None, since: float = 0.0, min_points: int = 12) -> list[dict[str, Any]]:
        """One point per bucket up to ``now``, starting no earlier than ``since`` (the gateway's start:
        a young gateway's charts are not mostly empty history) but showing at least ``min_points``."""
        now = time.time() if now is None else now
        last = int(now // self.step)
        count = min(self.buckets.maxlen or 1, max(min_points, last - int(since // self.step) + 1))
        by_index = {b.index: b for b in self.buckets}
        return [(by_index.get(i) or Bucket(i)).as_point(self.step) for i in range(last - count + 1, last + 1)]


class EventsRing:
    """The last ``max_events`` request records and the last swarm runs, newest last."""

    def __init__(self, max_events: int = 200, max_swarm_runs: int = 50) -> None:
        self.requests: deque[RequestRecord] = deque(maxlen=max_events)
        self.swarm_runs: deque[SwarmRun] = deque(maxlen=max_swarm_runs)

    def recent(self, limit: int | None = None) -> list[dict[str, Any]]:
        items = list(self.requests)[-limit:] if limit else list(self.requests)
        return [rec.as_event() for rec in reversed(items)]

    def original_events(self) -> list[dict[str, Any]]:
        """Every kept request as the original's dashboard rows, oldest first (as it listed them)."""
        return [rec.as_original_event() for rec in self.requests]

    def recent_swarm_runs(self) -> list[dict[str, Any]]:
        return [run.as_event() for run in reversed(self.swarm_runs)]
