"""Prometheus metrics of one gateway, on a registry the gateway owns (never the global one).

``Metrics.observe(record)`` is called once per finished request. Label children are looked up once
per label combination and cached in plain dicts, so the hot path is a dict lookup and a few
``inc``/``observe`` calls. Gauges that describe state (queue depth, loaded models) are set by whoever
owns that state. ``docs/observability.md`` maps each name to its OpenTelemetry GenAI counterpart.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from local_lattice.observability.record import RequestRecord

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)
TOKEN_TIME_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56)
OVERHEAD_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25)


class _Series:
    """The label children of one (route, model, backend) combination."""

    __slots__ = ("duration", "overhead", "tokens_in", "tokens_out", "tpot", "ttft", "upstream")

    def __init__(self, m: Metrics, route: str, model: str, backend: str) -> None:
        self.duration = m.request_duration.labels(route, model, backend)
        self.ttft = m.ttft.labels(route, model, backend)
        self.tpot = m.tpot.labels(model, backend)
        self.upstream = m.upstream_duration.labels(model, backend)
        self.overhead = m.overhead.labels(route)
        self.tokens_in = m.tokens.labels(model, backend, "input")
        self.tokens_out = m.tokens.labels(model, backend, "output")


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        rmb = ("route", "model", "backend")
        self.requests = Counter("lattice_requests", "Finished requests.", (*rmb, "status"), registry=r)
        self.request_duration = Histogram(
            "lattice_request_duration_seconds", "Whole request time as the client sees it.", rmb,
            buckets=LATENCY_BUCKETS, registry=r,
        )  # fmt: skip
        self.ttft = Histogram(
            "lattice_time_to_first_token_seconds", "From request arrival to the first streamed chunk.", rmb,
            buckets=LATENCY_BUCKETS, registry=r,
        )  # fmt: skip
        self.tpot = Histogram(
            "lattice_time_per_output_token_seconds", "Mean time between output tokens after the first.",
            ("model", "backend"), buckets=TOKEN_TIME_BUCKETS, registry=r,
        )  # fmt: skip
        self.upstream_duration = Histogram(
            "lattice_upstream_duration_seconds", "Time spent in the backend.", ("model", "backend"),
            buckets=LATENCY_BUCKETS, registry=r,
        )  # fmt: skip
        self.overhead = Histogram(
            "lattice_gateway_overhead_seconds", "Request time minus upstream time: the gateway's own cost.",
            ("route",), buckets=OVERHEAD_BUCKETS, registry=r,
        )  # fmt: skip
        self.queue_wait = Histogram(
            "lattice_queue_wait_seconds", "Time a request waited for admission.", ("model",),
            buckets=LATENCY_BUCKETS, registry=r,
        )  # fmt: skip
        self.queue_depth = Gauge("lattice_queue_depth", "Requests waiting for admission.", ("model",), registry=r)
        self.in_flight = Gauge("lattice_requests_in_flight", "Requests being served now.", ("route",), registry=r)
        self.tokens = Counter("lattice_tokens", "Tokens in and out.", ("model", "backend", "type"), registry=r)
        self.errors = Counter("lattice_errors", "Failed requests by error kind.", ("route", "kind"), registry=r)
        self.models_available = Gauge("lattice_models_available", "Models a backend offers.", ("backend",), registry=r)
        self.models_loaded = Gauge("lattice_models_loaded", "Models a backend has loaded.", ("backend",), registry=r)
        self.swarm_runs = Counter("lattice_swarm_runs", "Swarm runs by strategy.", ("strategy",), registry=r)
        self.ledger_dropped = Counter(
            "lattice_ledger_dropped_records", "Ledger records not written (queue full or write failed).", registry=r
        )
        self._series: dict[tuple[str, str, str], _Series] = {}
        self._status: dict[tuple[str, str, str, int], Any] = {}
        self._in_flight: dict[str, Any] = {}
        self._queue_wait: dict[str, Any] = {}

    def in_flight_for(self, route: str) -> Any:
        child = self._in_flight.get(route)
        if child is None:
            child = self._in_flight[route] = self.in_flight.labels(route)
        return child

    def observe(self, rec: RequestRecord) -> None:
        key = (rec.route, rec.model or "-", rec.backend or "-")
        series = self._series.get(key)
        if series is None:
            series = self._series[key] = _Series(self, *key)
        skey = (*key, rec.status)
        counter = self._status.get(skey)
        if counter is None:
            counter = self._status[skey] = self.requests.labels(*key, str(rec.status))
        counter.inc()
        series.duration.observe(rec.latency)
        series.overhead.observe(rec.overhead)
        if rec.backend:
            series.upstream.observe(rec.timings.upstream)
        if rec.ttft is not None:
            series.ttft.observe(rec.ttft)
            if rec.output_tokens > 1:
                series.tpot.observe((rec.latency - rec.ttft) / (rec.output_tokens - 1))
        if rec.input_tokens:
            series.tokens_in.inc(rec.input_tokens)
        if rec.output_tokens:
            series.tokens_out.inc(rec.output_tokens)
        if rec.timings.queue:
            wait = self._queue_wait.get(key[1])
            if wait is None:
                wait = self._queue_wait[key[1]] = self.queue_wait.labels(key[1])
            wait.observe(rec.timings.queue)
        if rec.error_kind is not None:
            self.errors.labels(rec.route, rec.error_kind).inc()

    def set_models(self, available: Iterable[tuple[str, int, int]]) -> None:
        """Set the per-backend model gauges from ``(backend, available, loaded)`` triples."""
        for backend, count, loaded in available:
            self.models_available.labels(backend).set(count)
            self.models_loaded.labels(backend).set(loaded)

    def render(self) -> bytes:
        return generate_latest(self.registry)
