"""Prometheus metrics of one gateway, on a registry the gateway owns (never the global one).

``Metrics.observe(record)`` is called once per finished request. The per-request series (request
counts, durations, time to first token, time per token, upstream time, overhead, queue wait,
tokens, errors, in flight) are plain counters and bucket lists, updated without locks or label
lookups — the request path runs on the event loop thread only — and turned into metric families
when ``/metrics`` is scraped (``RequestCollector``). Gauges that describe state (queue depth,
loaded models) and rare counters are ordinary prometheus-client metrics set by whoever owns that
state; the fleet's per-backend figures are read from the gateway at scrape time (``FleetCollector``).
``docs/observability.md`` maps each name to its OpenTelemetry GenAI counterpart.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Iterable, Iterator, Sequence

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from local_lattice.observability.record import RequestRecord
from local_lattice.types import FleetRow

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)
TOKEN_TIME_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56)
OVERHEAD_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25)


class Buckets:
    """One histogram series: counts per bucket (the last is +Inf) and the sum of observations."""

    __slots__ = ("bounds", "counts", "total")

    def __init__(self, bounds: Sequence[float]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)
        self.total = 0.0

    def observe(self, value: float) -> None:
        # Bucket ``le=b`` counts values <= b: the first bound not below the value.
        self.counts[bisect_left(self.bounds, value)] += 1
        self.total += value

    def cumulative(self) -> list[tuple[str, float]]:
        out: list[tuple[str, float]] = []
        running = 0
        for bound, count in zip((*map(repr, map(float, self.bounds)), "+Inf"), self.counts, strict=True):
            running += count
            out.append((bound, running))
        return out


class Histograms:
    """A histogram family: one ``Buckets`` per label values."""

    def __init__(self, name: str, documentation: str, labels: Sequence[str], bounds: Sequence[float]) -> None:
        self.name, self.documentation, self.labels, self.bounds = name, documentation, list(labels), bounds
        self.series: dict[tuple[str, ...], Buckets] = {}

    def child(self, *values: str) -> Buckets:
        found = self.series.get(values)
        if found is None:
            found = self.series[values] = Buckets(self.bounds)
        return found

    def family(self) -> Metric:
        family = HistogramMetricFamily(self.name, self.documentation, labels=self.labels)
        for values, b in self.series.items():
            family.add_metric(list(values), b.cumulative(), b.total)
        return family


class Counts:
    """A counter (or, with ``gauge``, an up-and-down gauge) family: a number per label values."""

    def __init__(self, name: str, documentation: str, labels: Sequence[str], *, gauge: bool = False) -> None:
        self.name, self.documentation, self.labels, self.gauge = name, documentation, list(labels), gauge
        self.values: dict[tuple[str, ...], float] = {}

    def add(self, values: tuple[str, ...], amount: float = 1) -> None:
        self.values[values] = self.values.get(values, 0) + amount

    def family(self) -> Metric:
        kind = GaugeMetricFamily if self.gauge else CounterMetricFamily
        family = kind(self.name, self.documentation, labels=self.labels)
        for values, amount in self.values.items():
            family.add_metric(list(values), amount)
        return family


class _Series:
    """The histograms of one (route, model, backend) combination, looked up once per request."""

    __slots__ = ("duration", "overhead", "tokens_in", "tokens_out", "tpot", "ttft", "upstream")

    def __init__(self, m: Metrics, route: str, model: str, backend: str) -> None:
        self.duration = m.request_duration.child(route, model, backend)
        self.ttft = m.ttft.child(route, model, backend)
        self.tpot = m.tpot.child(model, backend)
        self.upstream = m.upstream_duration.child(model, backend)
        self.overhead = m.overhead.child(route)
        self.tokens_in = (model, backend, "input")
        self.tokens_out = (model, backend, "output")


class RequestCollector(Collector):
    """Hands the registry the per-request families at scrape time."""

    def __init__(self, families: Sequence[Histograms | Counts]) -> None:
        self.families = families

    def collect(self) -> Iterator[Metric]:
        for family in self.families:
            yield family.family()

    def describe(self) -> Iterator[Metric]:
        kinds = {Histograms: HistogramMetricFamily, Counts: CounterMetricFamily}
        for f in self.families:
            kind = GaugeMetricFamily if isinstance(f, Counts) and f.gauge else kinds[type(f)]
            yield kind(f.name, f.documentation, labels=f.labels)


class FleetCollector(Collector):
    """Per backend that shares a model id with others: calls outstanding, the latency EWMA, affinity
    outcomes, hedges started and won — read from ``rows`` when scraped."""

    def __init__(self, rows: Callable[[], Iterable[FleetRow]]) -> None:
        self.rows = rows

    def _families(
        self,
    ) -> tuple[GaugeMetricFamily, GaugeMetricFamily, CounterMetricFamily, CounterMetricFamily, CounterMetricFamily]:
        backend = ["backend"]
        return (
            GaugeMetricFamily("lattice_backend_outstanding", "Calls in flight on a fleet backend.", labels=backend),
            GaugeMetricFamily(
                "lattice_backend_latency_ewma_seconds", "Moving average of a fleet backend's time to first byte.",
                labels=backend,
            ),
            CounterMetricFamily(
                "lattice_affinity", "Requests placed by session affinity, by outcome (hit, new, moved, spilled).",
                labels=["backend", "outcome"],
            ),
            CounterMetricFamily("lattice_hedges_started", "Hedge calls started on a backend.", labels=backend),
            CounterMetricFamily("lattice_hedges_won", "Hedge calls on a backend that answered first.", labels=backend),
        )  # fmt: skip

    def collect(self) -> Iterator[Metric]:
        outstanding, latency, affinity, started, won = families = self._families()
        for row in self.rows():
            outstanding.add_metric([row.backend], row.outstanding)
            if row.latency is not None:
                latency.add_metric([row.backend], row.latency)
            for outcome, count in sorted(row.affinity.items()):
                affinity.add_metric([row.backend, outcome], count)
            started.add_metric([row.backend], row.hedges_started)
            won.add_metric([row.backend], row.hedges_won)
        yield from families

    def describe(self) -> Iterator[Metric]:
        yield from self._families()


class Metrics:
    """The Prometheus series of one gateway, in a registry of its own (``/metrics`` renders it)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        rmb = ("route", "model", "backend")
        self.requests = Counts("lattice_requests", "Finished requests.", (*rmb, "status"))
        self.request_duration = Histograms(
            "lattice_request_duration_seconds", "Whole request time as the client sees it.", rmb, LATENCY_BUCKETS
        )
        self.ttft = Histograms(
            "lattice_time_to_first_token_seconds", "From request arrival to the first streamed chunk.", rmb,
            LATENCY_BUCKETS,
        )  # fmt: skip
        self.tpot = Histograms(
            "lattice_time_per_output_token_seconds", "Mean time between output tokens after the first.",
            ("model", "backend"), TOKEN_TIME_BUCKETS,
        )  # fmt: skip
        self.upstream_duration = Histograms(
            "lattice_upstream_duration_seconds", "Time spent in the backend.", ("model", "backend"), LATENCY_BUCKETS
        )
        self.overhead = Histograms(
            "lattice_gateway_overhead_seconds", "Request time minus upstream time: the gateway's own cost.",
            ("route",), OVERHEAD_BUCKETS,
        )  # fmt: skip
        self.queue_wait = Histograms(
            "lattice_queue_wait_seconds", "Time a request waited for admission.", ("model",), LATENCY_BUCKETS
        )
        self.in_flight = Counts("lattice_requests_in_flight", "Requests being served now.", ("route",), gauge=True)
        self.tokens = Counts("lattice_tokens", "Tokens in and out.", ("model", "backend", "type"))
        self.errors = Counts("lattice_errors", "Failed requests by error kind.", ("route", "kind"))
        r.register(
            RequestCollector(
                (
                    self.requests, self.request_duration, self.ttft, self.tpot, self.upstream_duration,
                    self.overhead, self.queue_wait, self.in_flight, self.tokens, self.errors,
                )
            )
        )  # fmt: skip
        self.queue_depth = Gauge("lattice_queue_depth", "Requests waiting for admission.", ("model",), registry=r)
        self.models_available = Gauge("lattice_models_available", "Models a backend offers.", ("backend",), registry=r)
        self.models_loaded = Gauge("lattice_models_loaded", "Models a backend has loaded.", ("backend",), registry=r)
        self.swarm_runs = Counter("lattice_swarm_runs", "Swarm runs by strategy.", ("strategy",), registry=r)
        self.ledger_dropped = Counter(
            "lattice_ledger_dropped_records", "Ledger records not written (queue full or write failed).", registry=r
        )
        self._series: dict[tuple[str, str, str], _Series] = {}

    def started(self, route: str) -> None:
        self.in_flight.add((route,), 1)

    def ended(self, route: str) -> None:
        self.in_flight.add((route,), -1)

    def observe(self, rec: RequestRecord) -> None:
        """Count a finished request."""
        key = (rec.route, rec.model or "-", rec.backend or "-")
        series = self._series.get(key)
        if series is None:
            series = self._series[key] = _Series(self, *key)
        self.requests.add((*key, str(rec.status)))
        series.duration.observe(rec.latency)
        series.overhead.observe(rec.overhead)
        if rec.backend:
            series.upstream.observe(rec.timings.upstream)
        if rec.ttft is not None:
            series.ttft.observe(rec.ttft)
            if rec.output_tokens > 1:
                series.tpot.observe((rec.latency - rec.ttft) / (rec.output_tokens - 1))
        if rec.input_tokens:
            self.tokens.add(series.tokens_in, rec.input_tokens)
        if rec.output_tokens:
            self.tokens.add(series.tokens_out, rec.output_tokens)
        if rec.timings.queue:
            self.queue_wait.child(key[1]).observe(rec.timings.queue)
        if rec.error_kind is not None:
            self.errors.add((rec.route, rec.error_kind))

    def set_models(self, available: Iterable[tuple[str, int, int]]) -> None:
        """Set the per-backend model gauges from ``(backend, available, loaded)`` triples."""
        for backend, count, loaded in available:
            self.models_available.labels(backend).set(count)
            self.models_loaded.labels(backend).set(loaded)

    def watch_state(self, degraded: Callable[[], bool]) -> None:
        """``lattice_state_degraded``: 1 while the shared store is lost and limits are counted locally."""
        gauge = Gauge(
            "lattice_state_degraded", "1 while the shared state store is lost (limits local).", registry=self.registry
        )
        gauge.set_function(lambda: float(degraded()))

    def watch_fleet(self, rows: Callable[[], Iterable[FleetRow]]) -> None:
        """Export the fleet's per-backend figures, read from ``rows`` at each scrape."""
        self.registry.register(FleetCollector(rows))

    def render(self) -> bytes:
        return generate_latest(self.registry)
