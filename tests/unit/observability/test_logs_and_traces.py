"""Log lines carry the request id (text and JSON); OpenTelemetry spans carry GenAI attributes."""

from __future__ import annotations

import io
import logging
import time
from collections.abc import Iterator

import orjson
import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from starlette.testclient import TestClient

from local_lattice.backends.fake import FakeBackend
from local_lattice.observability import logs
from local_lattice.observability.tracing import Tracing
from tests.unit.observability.conftest import AUTH

CHAT = "/v1/chat/completions"
BODY = {"model": "m1", "messages": [{"role": "user", "content": "hi"}]}


@pytest.fixture
def log_stream() -> Iterator[tuple[io.StringIO, logging.Handler]]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(logs.RequestIdFilter())
    root = logging.getLogger()
    root.addHandler(handler)
    level = root.level
    root.setLevel(logging.INFO)
    yield stream, handler
    root.removeHandler(handler)
    root.setLevel(level)


def logged(stream: io.StringIO, text: str, timeout: float = 2.0) -> list[str]:
    """The lines holding ``text``, once there is one: a request's line is written up to 50 ms after it ends."""
    deadline = time.monotonic() + timeout
    while True:
        lines = [line for line in stream.getvalue().splitlines() if text in line]
        if lines or time.monotonic() > deadline:
            return lines
        time.sleep(0.01)


def test_text_timing_line_has_the_request_id(
    client: TestClient, log_stream: tuple[io.StringIO, logging.Handler]
) -> None:
    stream, handler = log_stream
    handler.setFormatter(logging.Formatter(logs.TEXT_FORMAT))
    client.post(CHAT, json=BODY, headers={**AUTH, "X-Request-Id": "req-text-1"})
    lines = logged(stream, "lattice.request ")
    assert len(lines) == 1
    assert "[req-text-1]" in lines[0]
    for field in ("resolve_ms=", "queue_ms=", "upstream_ms=", "total_ms=", "path=/v1/chat/completions", "status=200"):
        assert field in lines[0]


def test_json_lines_with_errors(
    client: TestClient, fake: FakeBackend, log_stream: tuple[io.StringIO, logging.Handler]
) -> None:
    stream, handler = log_stream
    handler.setFormatter(logs.JsonFormatter())
    client.post(CHAT, json={**BODY, "model": "nope"}, headers={**AUTH, "X-Request-Id": "req-json-1"})
    records = [orjson.loads(line) for line in logged(stream, "lattice.request ")]
    timing = [r for r in records if r["logger"] == "lattice.request"]
    assert len(timing) == 1
    assert timing[0]["request_id"] == "req-json-1"
    assert timing[0]["level"] == "INFO"
    assert "status=404" in timing[0]["message"]
    assert "error=model_not_found" in timing[0]["message"]


def test_outside_a_request_the_id_is_a_dash() -> None:
    record = logging.makeLogRecord({"msg": "x"})
    logs.RequestIdFilter().filter(record)
    assert record.request_id == "-"  # type: ignore[attr-defined]


def test_configure_installs_one_handler() -> None:
    root = logging.getLogger()
    before = list(root.handlers)
    try:
        handler = logs.configure("json")
        assert root.handlers == [handler]
        assert isinstance(handler.formatter, logs.JsonFormatter)
    finally:
        root.handlers[:] = before


@pytest.fixture
def spans(client: TestClient) -> InMemorySpanExporter:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    client.app.state.gateway.observer.tracing = Tracing.from_provider(provider)  # type: ignore[attr-defined]
    return exporter


def test_one_span_per_request_with_genai_attributes(client: TestClient, spans: InMemorySpanExporter) -> None:
    client.post(CHAT, json=BODY, headers={**AUTH, "X-Request-Id": "req-span-1"})
    client.post(CHAT, json={**BODY, "stream": True}, headers=AUTH)
    finished = spans.get_finished_spans()
    assert [s.name for s in finished] == ["chat m1", "chat m1"]
    attrs = dict(finished[0].attributes or {})
    assert attrs["gen_ai.operation.name"] == "chat"
    assert attrs["gen_ai.request.model"] == "m1"
    assert attrs["gen_ai.response.model"] == "m1"
    assert attrs["gen_ai.usage.input_tokens"] == 3
    assert attrs["gen_ai.usage.output_tokens"] == 3
    assert attrs["lattice.request_id"] == "req-span-1"
    assert attrs["http.response.status_code"] == 200
    assert "lattice.time_to_first_token_s" in dict(finished[1].attributes or {})


def test_failed_request_span_has_error_type(client: TestClient, fake: FakeBackend, spans: InMemorySpanExporter) -> None:
    from local_lattice.errors import UpstreamError

    fake.fail_with = UpstreamError("boom")
    client.post(CHAT, json=BODY, headers=AUTH)
    (span,) = spans.get_finished_spans()
    assert span.attributes is not None
    assert span.attributes["error.type"] == "bad_gateway"
    assert span.status.status_code.name == "ERROR"


def test_agent_spans_are_children_of_the_request_span() -> None:
    from local_lattice.observability.record import RequestRecord
    from local_lattice.observability.timing import Timings

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing = Tracing.from_provider(provider)
    rec = RequestRecord("r1", "/v1/chat/completions", Timings(0.0), model="swarm", backend="swarm")
    tracing.start(rec)
    with tracing.agent_span(rec, "m1") as one, tracing.agent_span(rec, "m2"):
        assert one is not None
    tracing.end(rec)
    by_name = {s.name: s for s in exporter.get_finished_spans()}
    parent = by_name["chat swarm"]
    for name in ("agent m1", "agent m2"):
        assert by_name[name].parent is not None
        assert by_name[name].parent.span_id == parent.context.span_id  # type: ignore[union-attr]


def test_tracing_off_costs_nothing() -> None:
    tracing = Tracing.create(False)
    assert not tracing.enabled
    with tracing.agent_span(None, "m1") as span:
        assert span is None
