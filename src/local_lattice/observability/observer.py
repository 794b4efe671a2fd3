"""The observer: where a finished request goes. One ``finish(record)`` feeds the metrics, the
events ring and chart series, the ledger, the trace span and the timing log line.

What a client or a reader needs at once happens in ``finish``: the totals, the in-flight gauge,
the events ring, the ledger queue and the span. The rest — the request metrics, the chart series
and the timing log line — is done for all requests finished in the last ``FLUSH_DELAY`` seconds in
one pass (``flush``), on the event loop, and before anything reads them (``/metrics``, the
dashboard): done per request, interleaved with the network work, it cost twice as much.

Built by the gateway from the config (no module-level state). The request path calls ``begin``
when a request arrives, ``routed`` once a model is chosen and ``finish`` exactly once at the end
(the exception handler calls ``fail``, which finishes a record the route left open). Other parts
feed it too: the metrics route sets queue depths from admission, swarm adds ``SwarmRun`` records.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from local_lattice.config import Config
from local_lattice.observability.events import EventsRing, Series
from local_lattice.observability.later import Later
from local_lattice.observability.ledger import Ledger, resolve_path
from local_lattice.observability.metrics import Metrics
from local_lattice.observability.record import RequestRecord, SwarmRun
from local_lattice.observability.timing import Timings
from local_lattice.observability.tracing import Tracing

FLUSH_DELAY = 0.05  # seconds a finished request may wait for its metrics, chart point and log line
MAX_PENDING = 1024  # or this many requests, whichever comes first
PASS_CHUNK = 16  # requests fed per loop turn in a scheduled pass


class Observer:
    def __init__(self, config: Config, *, tracing: Tracing | None = None) -> None:
        obs, dash = config.observability, config.dashboard
        self.metrics = Metrics()
        self.events = EventsRing(dash.max_events)
        self.series = Series()
        self.capture_prompts = dash.capture_prompts
        self.preview_chars = dash.preview_chars
        self.ledger_path = resolve_path(obs.ledger_path)
        self.ledger = Ledger(self.ledger_path, on_drop=self.metrics.ledger_dropped.inc) if self.ledger_path else None
        self.tracing = tracing if tracing is not None else Tracing.create(obs.otel_enabled)
        self._queue_depths: dict[str, int] = {}
        self.in_flight = 0
        self.requests = 0
        self.errors = 0
        self.input_tokens = 0
        self.output_tokens = 0
        self.started_at = time.time()
        self._pending: list[RequestRecord] = []
        self._later = Later(self._pass, FLUSH_DELAY)

    def begin(self, state: dict[str, Any], route: str, operation: str) -> RequestRecord:
        """Open the record of the request whose ASGI ``state`` is given (the front door filled it)."""
        rec = RequestRecord(
            state["request_id"],
            route,
            Timings(state["started"]),
            key_name=state.get("key_name", "-"),
            operation=operation,
        )
        state["record"] = rec
        self.metrics.started(route)
        self.in_flight += 1
        return rec

    def requested(self, rec: RequestRecord, body: dict[str, Any]) -> None:
        """Note what the client asked for (and a prompt preview when capture is on)."""
        spec = body.get("model")
        rec.requested_model = spec if isinstance(spec, str) else ("" if spec is None else type(spec).__name__)
        if self.capture_prompts:
            rec.preview = self.preview(body)

    def routed(self, rec: RequestRecord, model: str, backend: str) -> None:
        rec.model = model
        rec.backend = backend
        if self.tracing.tracer is not None:
            self.tracing.start(rec)

    def finish(self, rec: RequestRecord, status: int, error_kind: str | None = None) -> None:
        if rec.done:
            return
        rec.done = True
        rec.status = status
        if error_kind is not None:
            rec.error_kind = error_kind
        rec.latency = rec.timings.total()
        self.metrics.ended(rec.route)
        self.in_flight -= 1
        self.requests += 1
        self.errors += rec.error_kind is not None
        self.input_tokens += rec.input_tokens
        self.output_tokens += rec.output_tokens
        self.events.requests.append(rec)
        if self.ledger is not None:
            self.ledger.record(rec)
        if rec.span is not None:
            self.tracing.end(rec)
        self._pending.append(rec)
        if len(self._pending) >= MAX_PENDING:
            self.flush()
            return
        if not self._later.ask():
            self.flush()

    def _pass(self, loop: asyncio.AbstractEventLoop) -> None:
        """The scheduled pass, ``PASS_CHUNK`` requests per loop turn: a long backlog fed in one
        callback would hold up the requests in flight for as long."""
        if not self._later.holds(loop):
            return  # a read flushed everything meanwhile; a later finish scheduled its own pass
        self._feed(PASS_CHUNK)
        if self._pending:
            loop.call_soon(self._pass, loop)
        else:
            self._later.done()

    def flush(self) -> None:
        """Feed every request finished so far (before a read, and at close)."""
        self._later.done()
        self._feed(len(self._pending))

    def _feed(self, count: int) -> None:
        """Feed the oldest ``count`` finished requests to the metrics, the chart series and the
        timing log (each line stamped with its request's own end)."""
        chunk, self._pending = self._pending[:count], self._pending[count:]
        for rec in chunk:
            ended = rec.time + rec.latency
            self.metrics.observe(rec)
            self.series.add(rec, ended)
            rec.timings.log(
                path=rec.route,
                status=rec.status,
                request_id=rec.request_id,
                model=f"{rec.backend}/{rec.model}" if rec.backend else "",
                extra=("" if rec.error_kind is None else f" error={rec.error_kind}")
                + ("" if rec.cost is None else f" cost_usd={rec.cost:.8f}"),
                total=rec.latency,
                at=ended,
            )

    def fail(self, state: dict[str, Any], status: int, error_kind: str, path: str) -> None:
        """Record a failed request: finish its open record, or count the error if it had none."""
        rec = state.get("record")
        if isinstance(rec, RequestRecord):
            self.finish(rec, status, error_kind)
        else:
            self.metrics.errors.add((path, error_kind))

    def preview(self, body: dict[str, Any]) -> str | None:
        """The last user message, cut to ``preview_chars`` — only when prompt capture is on."""
        if not self.capture_prompts or self.preview_chars <= 0:
            return None
        text = body.get("prompt")
        for message in reversed(body.get("messages") or ()):
            if isinstance(message, dict) and message.get("role") == "user":
                text = message.get("content")
                break
        if isinstance(text, list):
            text = " ".join(p.get("text", "") for p in text if isinstance(p, dict))
        return text[: self.preview_chars] if isinstance(text, str) else None

    def swarm_run(self, run: SwarmRun) -> None:
        self.events.swarm_runs.append(run)
        self.metrics.swarm_runs.labels(run.strategy).inc()

    def queue_depths(self) -> dict[str, int]:
        return dict(self._queue_depths)

    def set_queue_depth(self, model: str, depth: int) -> None:
        self._queue_depths[model] = depth
        self.metrics.queue_depth.labels(model).set(depth)
        self.series.queue_depth(sum(self._queue_depths.values()), time.time())

    def totals(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "errors": self.errors,
            "in_flight": self.in_flight,
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "queue_depth": sum(self._queue_depths.values()),
            "uptime_s": round(time.time() - self.started_at, 1),
            "ledger": self.ledger_path or "off",
        }

    def close(self) -> None:
        self.flush()
        if self.ledger is not None:
            self.ledger.close()
