"""The HTTP layer in-process (Starlette's TestClient, no sockets) over FakeBackends."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from starlette.testclient import TestClient

from local_lattice.api.app import create_app
from local_lattice.backends.fake import FakeBackend
from local_lattice.config import load
from local_lattice.errors import UpstreamError

MESSAGES = [{"role": "user", "content": "hi"}]


@pytest.fixture
def fake() -> FakeBackend:
    return FakeBackend.with_models("f", "m1", reply="one two three")


@pytest.fixture
def client(fake: FakeBackend) -> Iterator[TestClient]:
    config = load(None, {"MIDDLE_LAYER_API_KEY": "k1", "MIDDLE_LAYER_MAX_REQUEST_BYTES": "4096"})
    config.server.api_keys.append(config.server.api_keys[0].__class__("k2"))
    with TestClient(create_app(config, {"f": fake})) as test_client:
        yield test_client


@pytest.mark.parametrize(
    "headers",
    [{"X-API-Key": "k1"}, {"X-API-Key": "k2"}, {"Authorization": "Bearer k1"}, {"Authorization": "bearer k2"}],
)
def test_any_configured_key_in_either_header_is_accepted(client: TestClient, headers: dict[str, str]) -> None:
    assert client.get("/v1/models", headers=headers).status_code == 200


@pytest.mark.parametrize(
    "headers",
    [{}, {"X-API-Key": "nope"}, {"Authorization": "Basic k1"}, {"Authorization": "Bearer "}, {"X-API-Key": "k1x"}],
)
def test_missing_or_wrong_key_is_401(client: TestClient, headers: dict[str, str]) -> None:
    response = client.get("/v1/models", headers=headers)
    assert response.status_code == 401
    assert response.json()["error"]["type"] == "authentication_error"
    assert response.headers["x-frame-options"] == "DENY"


def test_key_in_query_string_is_not_accepted(client: TestClient) -> None:
    assert client.get("/v1/models?api_key=k1").status_code == 401


def test_healthz_is_public(client: TestClient) -> None:
    assert client.get("/healthz").status_code == 200


@pytest.mark.parametrize(
    "headers", [{}, {"X-API-Key": "nope"}, {"Authorization": "Basic k1"}, {"X-API-Key": "k1", "Authorization": "x"}]
)
def test_healthz_without_a_valid_key_discloses_nothing(client: TestClient, headers: dict[str, str]) -> None:
    response = client.get("/healthz", headers=headers)
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "ok": True}


@pytest.mark.parametrize("headers", [{"X-API-Key": "k2"}, {"Authorization": "Bearer k1"}])
def test_healthz_with_a_valid_key_carries_the_full_state(client: TestClient, headers: dict[str, str]) -> None:
    body = client.get("/healthz", headers=headers).json()
    assert body["backends"]["f"]["ok"] is True  # ours
    assert (body["ok"], body["models"], body["lmstudio_models"], body["mlx_models"]) == (True, ["m1"], ["m1"], [])
    assert body["strict_loaded_models"] is True
    assert body["swarm_chat_canonical"] == "swarmCouncil"
    assert body["swarm_chat_aliases"]["swarmintelligence"] == {"intent": "council", "deprecated": True}
    assert body["generation_advisory_timeout_sec"] == 300.0
    assert body["admission"]["queued_total"] == body["admission"]["waiting"] == 0


def test_security_headers_and_request_id_on_every_response(client: TestClient) -> None:
    response = client.get("/nowhere", headers={"X-API-Key": "k1", "X-Request-Id": "abc-123"})
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"
    assert response.headers["x-request-id"] == "abc-123"
    for name, value in [
        ("x-content-type-options", "nosniff"),
        ("x-frame-options", "DENY"),
        ("referrer-policy", "no-referrer"),
        ("cross-origin-resource-policy", "same-origin"),
    ]:
        assert response.headers[name] == value


def test_malformed_request_id_is_replaced(client: TestClient) -> None:
    response = client.get("/healthz", headers={"X-Request-Id": "bad id\twith spaces"})
    assert response.headers["x-request-id"] != "bad id\twith spaces"
    assert len(response.headers["x-request-id"]) == 16


def test_body_over_the_cap_is_413_with_or_without_content_length(client: TestClient) -> None:
    big = b'{"messages": "' + b"x" * 5000 + b'"}'
    response = client.post("/v1/chat/completions", content=big, headers={"X-API-Key": "k1"})
    assert response.status_code == 413

    def chunks() -> Iterator[bytes]:
        yield big[:3000]
        yield big[3000:]

    response = client.post("/v1/chat/completions", content=chunks(), headers={"X-API-Key": "k1"})
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "request_too_large"


def test_wrong_method_is_an_openai_error(client: TestClient) -> None:
    response = client.get("/v1/chat/completions", headers={"X-API-Key": "k1"})
    assert response.status_code == 405
    assert "error" in response.json()


def test_gateway_only_fields_are_not_forwarded(client: TestClient, fake: FakeBackend) -> None:
    body = {"model": "m1", "messages": MESSAGES, "queue": {"priority": 3}, "vendor_field": {"x": 1}}
    assert client.post("/v1/chat/completions", json=body, headers={"X-API-Key": "k1"}).status_code == 200
    sent = fake.seen[-1].body
    assert "queue" not in sent
    assert sent["vendor_field"] == {"x": 1}


def test_stream_failure_before_first_chunk_is_a_plain_error(client: TestClient, fake: FakeBackend) -> None:
    fake.fail_with = UpstreamError("backend 'f' answered 500: boom")
    response = client.post(
        "/v1/chat/completions", json={"model": "m1", "messages": MESSAGES, "stream": True}, headers={"X-API-Key": "k1"}
    )
    assert response.status_code == 502
    assert "boom" in response.json()["error"]["message"]


def test_stream_with_usage_gets_a_usage_chunk(client: TestClient) -> None:
    body = {"model": "m1", "messages": MESSAGES, "stream": True, "stream_options": {"include_usage": True}}
    response = client.post("/v1/chat/completions", json=body, headers={"X-API-Key": "k1"})
    events = [line for line in response.text.splitlines() if line.startswith("data: ")]
    assert events[-1] == "data: [DONE]"
    assert '"usage"' in events[-2]
    assert '"completion_tokens":3' in events[-2]


def test_embeddings_never_reach_chat_models(client: TestClient) -> None:
    response = client.post("/v1/embeddings", json={"model": "m1", "input": "x"}, headers={"X-API-Key": "k1"})
    assert response.status_code == 404
