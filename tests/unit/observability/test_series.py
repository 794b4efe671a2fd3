"""The dashboard's chart series: fixed buckets, percentiles, bounded memory."""

from __future__ import annotations

from local_lattice.observability.events import SAMPLES_PER_BUCKET, Series, percentile
from local_lattice.observability.record import RequestRecord
from local_lattice.observability.timing import Timings


def record(latency: float, ttft: float | None = None, tokens: int = 0) -> RequestRecord:
    rec = RequestRecord("r", "/v1/chat/completions", Timings(0.0), latency=latency, ttft=ttft, output_tokens=tokens)
    return rec


def test_points_per_bucket() -> None:
    series = Series(step=5.0, span=60.0)
    for latency in (0.1, 0.2, 0.3, 0.4):
        series.add(record(latency, ttft=0.05, tokens=10), now=1000.0)
    series.add(record(1.0), now=1011.0)
    points = series.points(now=1012.0, since=990.0)
    assert [p["t"] for p in points][-3:] == [1000.0, 1005.0, 1010.0]
    first, empty, last = points[-3:]
    assert first["requests_per_s"] == 0.8
    assert first["latency_p50_ms"] == 200.0
    assert first["latency_p95_ms"] == 400.0
    assert first["ttft_p50_ms"] == 50.0
    assert first["tokens_per_s"] == 8.0
    assert empty["requests_per_s"] == 0
    assert empty["latency_p50_ms"] is None
    assert last["latency_p50_ms"] == 1000.0


def test_young_gateway_shows_a_short_window_old_one_the_whole_span() -> None:
    series = Series(step=5.0, span=360.0)
    assert len(series.points(now=10_000.0, since=9_990.0)) == 12
    assert len(series.points(now=10_000.0, since=0.0)) == 72


def test_bucket_memory_is_bounded() -> None:
    series = Series()
    for i in range(5 * SAMPLES_PER_BUCKET):
        series.add(record(i / 1000), now=50.0)
    (bucket,) = series.buckets
    assert bucket.requests == 5 * SAMPLES_PER_BUCKET
    assert len(bucket.latencies) == SAMPLES_PER_BUCKET


def test_percentile() -> None:
    assert percentile([], 0.5) is None
    assert percentile([3.0, 1.0, 2.0], 0.5) == 2.0
    assert percentile([1.0, 2.0, 3.0, 4.0], 0.95) == 4.0
