"""``GET /metrics`` after known traffic: exact counts per route, model, backend and status."""

from __future__ import annotations

from pathlib import Path

import orjson
from prometheus_client.parser import text_string_to_metric_families
from starlette.testclient import TestClient

from local_lattice.api.app import create_app
from local_lattice.backends.fake import FakeBackend
from local_lattice.errors import UpstreamError
from tests.unit.observability.conftest import AUTH, make_config

CHAT = "/v1/chat/completions"
MESSAGES = [{"role": "user", "content": "hi"}]


def scrape(client: TestClient) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    response = client.get("/metrics", headers=AUTH)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def value(samples: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def stream_usage(text: str) -> dict[str, int]:
    events = [line[6:] for line in text.splitlines() if line.startswith("data: ") and line != "data: [DONE]"]
    usage = [orjson.loads(e)["usage"] for e in events if orjson.loads(e).get("usage")]
    assert len(usage) == 1
    return usage[0]  # type: ignore[no-any-return]


def test_counts_after_known_traffic(client: TestClient, fake: FakeBackend) -> None:
    prompt_tokens = completion_tokens = 0
    for _ in range(3):
        answer = client.post(CHAT, json={"model": "m1", "messages": MESSAGES}, headers=AUTH).json()
        prompt_tokens += answer["usage"]["prompt_tokens"]
        completion_tokens += answer["usage"]["completion_tokens"]
    for _ in range(2):
        body = {"model": "m1", "messages": MESSAGES, "stream": True, "stream_options": {"include_usage": True}}
        usage = stream_usage(client.post(CHAT, json=body, headers=AUTH).text)
        prompt_tokens += usage["prompt_tokens"]
        completion_tokens += usage["completion_tokens"]
    assert client.post(CHAT, json={"model": "nope", "messages": MESSAGES}, headers=AUTH).status_code == 404
    assert client.post(CHAT, content=b"{not json", headers=AUTH).status_code == 400
    fake.fail_with = UpstreamError("boom", backend="f")
    assert client.post(CHAT, json={"model": "m1", "messages": MESSAGES}, headers=AUTH).status_code == 502

    s = scrape(client)
    ok = {"route": CHAT, "model": "m1", "backend": "f"}
    assert value(s, "lattice_requests_total", **ok, status="200") == 5
    assert value(s, "lattice_requests_total", **ok, status="502") == 1
    assert value(s, "lattice_requests_total", route=CHAT, model="-", backend="-", status="404") == 1
    assert value(s, "lattice_requests_total", route=CHAT, model="-", backend="-", status="400") == 1
    assert value(s, "lattice_errors_total", route=CHAT, kind="model_not_found") == 1
    assert value(s, "lattice_errors_total", route=CHAT, kind="invalid_json") == 1
    assert value(s, "lattice_errors_total", route=CHAT, kind="bad_gateway") == 1
    assert value(s, "lattice_request_duration_seconds_count", **ok) == 6
    assert value(s, "lattice_time_to_first_token_seconds_count", **ok) == 2
    assert value(s, "lattice_gateway_overhead_seconds_count", route=CHAT) == 8
    assert value(s, "lattice_tokens_total", model="m1", backend="f", type="input") == prompt_tokens
    assert value(s, "lattice_tokens_total", model="m1", backend="f", type="output") == completion_tokens
    assert value(s, "lattice_requests_in_flight", route=CHAT) == 0
    assert value(s, "lattice_models_available", backend="f") == 1
    assert value(s, "lattice_models_loaded", backend="f") == 0


def test_overhead_is_total_minus_upstream(client: TestClient, fake: FakeBackend) -> None:
    fake.delay = 0.2
    client.post(CHAT, json={"model": "m1", "messages": MESSAGES}, headers=AUTH)
    s = scrape(client)
    upstream = value(s, "lattice_upstream_duration_seconds_sum", model="m1", backend="f")
    total = value(s, "lattice_request_duration_seconds_sum", route=CHAT, model="m1", backend="f")
    overhead = value(s, "lattice_gateway_overhead_seconds_sum", route=CHAT)
    assert upstream >= 0.2
    assert abs(total - upstream - overhead) < 0.005


def test_metrics_needs_the_key_unless_public(fake: FakeBackend, tmp_path: Path) -> None:
    with TestClient(create_app(make_config(tmp_path / "a.db"), {"f": fake})) as client:
        assert client.get("/metrics").status_code == 401
    config = make_config(tmp_path / "b.db")
    config.observability.metrics_public = True
    with TestClient(create_app(config, {"f": fake})) as client:
        assert client.get("/metrics").status_code == 200


def test_each_app_has_its_own_registry(fake: FakeBackend, tmp_path: Path) -> None:
    with (
        TestClient(create_app(make_config(tmp_path / "a.db"), {"f": fake})) as one,
        TestClient(create_app(make_config(tmp_path / "b.db"), {"f": fake})) as two,
    ):
        one.post(CHAT, json={"model": "m1", "messages": MESSAGES}, headers=AUTH)
        ok = {"route": CHAT, "model": "m1", "backend": "f", "status": "200"}
        assert value(scrape(one), "lattice_requests_total", **ok) == 1
        assert value(scrape(two), "lattice_requests_total", **ok) == 0


def test_stream_without_usage_counts_chunks(client: TestClient, fake: FakeBackend) -> None:
    body = {"model": "m1", "messages": MESSAGES, "stream": True}
    text = client.post(CHAT, json=body, headers=AUTH).text
    chunks = sum(1 for line in text.splitlines() if line.startswith("data: {"))
    s = scrape(client)
    assert value(s, "lattice_tokens_total", model="m1", backend="f", type="output") == chunks


def test_histogram_buckets_count_values_up_to_their_bound() -> None:
    from local_lattice.observability.metrics import Buckets

    b = Buckets((0.1, 1.0))
    for v in (0.05, 0.1, 0.5, 1.0, 7.0):
        b.observe(v)
    assert b.cumulative() == [("0.1", 2), ("1.0", 4), ("+Inf", 5)]
    assert b.total == 8.65
