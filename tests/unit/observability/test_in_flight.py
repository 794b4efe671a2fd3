"""Every request leaves the in-flight count as it found it: after traffic of every route kind —
answers, streams, swarms (a swarm meta-model on ``/v1/chat/completions`` too), failures — the gauge
and the dashboard's figure are 0, and each request was counted once."""

from __future__ import annotations

from typing import Any

from prometheus_client.parser import text_string_to_metric_families
from starlette.testclient import TestClient

from local_lattice.api.app import create_app
from local_lattice.backends.fake import FakeBackend
from local_lattice.config import Config
from local_lattice.types import ModelInfo

MESSAGES = [{"role": "user", "content": "hi"}]
SWARM = {"models": ["m1", "m2"], "messages": MESSAGES, "judge": "m1"}
TRAFFIC: list[tuple[str, dict[str, Any]]] = [
    ("/v1/chat/completions", {"model": "m1", "messages": MESSAGES}),
    ("/v1/chat/completions", {"model": "m1", "messages": MESSAGES, "stream": True}),
    ("/v1/chat/completions", {"model": "swarmCouncil", "messages": MESSAGES, "swarm": {"models": ["m1", "m2"]}}),
    ("/v1/chat/completions", {"model": "swarmCouncil", "messages": MESSAGES, "stream": True}),
    ("/v1/chat/completions", {"model": "swarm/fanout", "messages": MESSAGES}),
    ("/v1/chat/completions", {"model": "swarm/pipeline", "messages": MESSAGES}),  # 400: use /swarm/pipeline
    ("/v1/chat/completions", {"model": "m1"}),  # 400: no messages
    ("/v1/completions", {"model": "m1", "prompt": "hi"}),
    ("/v1/completions", {"model": "m1", "prompt": "hi", "stream": True}),
    ("/v1/embeddings", {"model": "embed-1", "input": "hi"}),
    ("/v1/responses", {"model": "m1", "input": "hi"}),
    ("/v1/responses", {"model": "m1", "input": "hi", "stream": True}),
    ("/v1/messages", {"model": "m1", "max_tokens": 8, "messages": MESSAGES}),
    ("/v1/messages", {"model": "m1", "max_tokens": 8, "messages": MESSAGES, "stream": True}),
    ("/swarm/vote", SWARM),
    ("/swarm/vote", {**SWARM, "stream": True}),
    ("/swarm/fanout", SWARM),
    ("/swarm/pipeline", {"steps": [{"name": "a", "model": "m1"}], "input": "hi"}),
    ("/swarm/debate", {**SWARM, "rounds": 1}),
    ("/swarm/vote", {"models": [], "messages": MESSAGES}),  # 400
]


def in_flight(client: TestClient) -> dict[str, float]:
    text = client.get("/metrics").text
    return {
        sample.labels["route"]: sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "lattice_requests_in_flight"
    }


def test_in_flight_is_zero_after_every_route_kind() -> None:
    backends = {
        "f": FakeBackend.with_models("f", "m1", "m2", reply="one two three", loaded=True),
        "e": FakeBackend("e", [ModelInfo("embed-1", "e", kind="embedding")]),
    }
    config = Config.model_validate({"observability": {"ledger_path": ":memory:"}})
    with TestClient(create_app(config, backends)) as client:
        for _ in range(3):
            statuses = [client.post(path, json=body).status_code for path, body in TRAFFIC]
            assert statuses.count(400) == 3
            assert set(statuses) == {200, 400}
        gauges = in_flight(client)
        assert set(gauges) >= {"/v1/chat/completions", "/v1/responses", "/v1/messages", "/swarm/vote"}
        assert gauges == dict.fromkeys(gauges, 0.0)
        totals = client.get("/dashboard/api/snapshot").json()["totals"]
        assert totals["in_flight"] == 0
        assert totals["requests"] == 3 * len(TRAFFIC)
