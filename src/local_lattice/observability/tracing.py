"""Optional OpenTelemetry traces: one span per request and child spans for swarm agents.

Off unless enabled; then it needs the ``otel`` extra (opentelemetry-api and -sdk). Spans carry the
GenAI semantic-convention attributes (``gen_ai.operation.name``, ``gen_ai.request.model``,
``gen_ai.usage.input_tokens`` …). A span is started when the request is routed and ended when its
record is finished, so a stream's span covers the whole stream. Swarm code opens child spans with
``Tracing.agent_span(parent_record, model)``.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from typing import Any

from local_lattice.observability.record import RequestRecord

log = logging.getLogger("lattice.tracing")

OPERATIONS = {"chat": "chat", "completions": "text_completion", "embeddings": "embeddings"}


class Tracing:
    """Wraps an OpenTelemetry tracer; ``Tracing(None)`` is the disabled, zero-cost form."""

    def __init__(self, tracer: Any = None) -> None:
        self.tracer = tracer

    @property
    def enabled(self) -> bool:
        return self.tracer is not None

    @classmethod
    def from_provider(cls, provider: Any) -> Tracing:
        from local_lattice import __version__

        return cls(provider.get_tracer("local_lattice", __version__))

    @classmethod
    def create(cls, enabled: bool) -> Tracing:
        """The SDK provider with an OTLP exporter when one is installed, configured by OTEL_* env vars."""
        if not enabled:
            return cls(None)
        try:
            from opentelemetry.sdk.resources import Resource
            from opentelemetry.sdk.trace import TracerProvider
            from opentelemetry.sdk.trace.export import BatchSpanProcessor
        except ImportError:
            log.warning("tracing is on but opentelemetry-sdk is missing: pip install 'local-lattice[otel]'")
            return cls(None)
        provider = TracerProvider(resource=Resource.create({"service.name": "local-lattice"}))
        try:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        except ImportError:
            log.warning("tracing is on but no OTLP exporter is installed; spans are created and dropped")
        else:
            provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
        return cls.from_provider(provider)

    def start(self, rec: RequestRecord) -> None:
        if self.tracer is None:
            return
        operation = OPERATIONS.get(rec.operation, rec.operation)
        span = self.tracer.start_span(
            f"{operation} {rec.model}".strip(),
            kind=_client_kind(),
            attributes={
                "gen_ai.operation.name": operation,
                "gen_ai.request.model": rec.requested_model or rec.model,
                "gen_ai.provider.name": rec.backend,
                "lattice.request_id": rec.request_id,
                "lattice.route": rec.route,
                "lattice.backend": rec.backend,
            },
        )
        rec.span = span

    def end(self, rec: RequestRecord) -> None:
        span = rec.span
        if span is None:
            return
        span.set_attribute("gen_ai.response.model", rec.model)
        span.set_attribute("gen_ai.usage.input_tokens", rec.input_tokens)
        span.set_attribute("gen_ai.usage.output_tokens", rec.output_tokens)
        span.set_attribute("http.response.status_code", rec.status)
        if rec.ttft is not None:
            span.set_attribute("lattice.time_to_first_token_s", rec.ttft)
        if rec.error_kind is not None:
            from opentelemetry.trace import Status, StatusCode

            span.set_attribute("error.type", rec.error_kind)
            span.set_status(Status(StatusCode.ERROR, rec.error_kind))
        span.end()
        rec.span = None

    @contextlib.contextmanager
    def agent_span(self, parent: RequestRecord | None, model: str, name: str = "agent") -> Iterator[Any]:
        """A child span for one swarm agent's call; yields the span (``None`` when tracing is off)."""
        if self.tracer is None:
            yield None
            return
        from opentelemetry import trace

        context = trace.set_span_in_context(parent.span) if parent is not None and parent.span else None
        attributes = {"gen_ai.operation.name": "chat", "gen_ai.request.model": model, "lattice.agent": name}
        with self.tracer.start_as_current_span(
            f"{name} {model}", context=context, kind=_client_kind(), attributes=attributes
        ) as span:
            yield span


def _client_kind() -> Any:
    from opentelemetry.trace import SpanKind

    return SpanKind.CLIENT
