"""The HTTP surface of routing: 404 envelopes, X-Model-Resolution, /v1/resolve and /swarm/models."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from starlette.testclient import TestClient

from local_lattice.api.app import create_app
from local_lattice.backends.fake import FakeBackend
from local_lattice.config import load
from local_lattice.errors import BackendUnavailable
from local_lattice.types import ModelInfo
from tests.support.sessions import sessions_homed_on

CHAT = {"messages": [{"role": "user", "content": "hi"}]}


@pytest.fixture
def client() -> Iterator[TestClient]:
    env = {"ON_MODEL_MISS": "error", "MODEL_ROLES_JSON": '{"coder": ["coder-7b"], "fast": ["tiny"]}'}
    backends = {
        "a": FakeBackend.with_models("a", "coder-7b", fail_with=BackendUnavailable("refused", backend="a")),
        "b": FakeBackend.with_models("b", "tiny-1b", "coder-7b"),
        "e": FakeBackend("e", [ModelInfo("nomic-embed-text", "e", kind="embedding")]),
    }
    with TestClient(create_app(load(None, env), backends)) as test_client:
        yield test_client


def test_no_match_is_a_404_envelope_listing_ids(client: TestClient) -> None:
    response = client.post("/v1/chat/completions", json={"model": "gpt-5-huge", **CHAT})
    assert response.status_code == 404
    error = response.json()["error"]
    assert error["code"] == "model_not_found"
    assert error["available"] == ["coder-7b", "tiny-1b"]


def test_unmet_hard_hints_are_named(client: TestClient) -> None:
    image = [{"type": "image_url", "image_url": {"url": "data:image/png;base64,AA=="}}]
    response = client.post(
        "/v1/chat/completions", json={"model": "auto", "messages": [{"role": "user", "content": image}]}
    )
    assert response.status_code == 404
    assert response.json()["error"]["unmet"] == ["needs_vision"]


def test_role_resolution_and_failover_are_explained(client: TestClient) -> None:
    [session] = sessions_homed_on("a", ["a", "b"])
    response = client.post(
        "/v1/chat/completions", json={"model": "role:coder", **CHAT}, headers={"X-Session-Id": session}
    )
    assert response.status_code == 200
    assert response.headers["X-Model-Routed-To"] == "b/coder-7b"
    resolution = response.headers["X-Model-Resolution"]
    assert resolution.startswith("role:coder -> coder-7b via 'coder-7b'; on a by affinity (x-session-id, new)")
    assert "a/coder-7b failed (backend_unavailable)" in resolution


def test_streams_fail_over_too(client: TestClient) -> None:
    with client.stream("POST", "/v1/chat/completions", json={"model": "coder-7b", "stream": True, **CHAT}) as resp:
        assert resp.status_code == 200
        assert resp.headers["X-Model-Routed-To"] == "b/coder-7b"
        text = "".join(resp.iter_text())
    assert text.endswith("data: [DONE]\n\n")


def test_resolve_is_a_dry_run(client: TestClient) -> None:
    body = {"model": "role:fast,role:coder", "tools": [{"type": "function", "function": {"name": "f"}}], **CHAT}
    response = client.post("/v1/resolve", json=body, headers={"X-Lattice-Latency-Tier": "fast"})
    assert response.status_code == 200
    data = response.json()
    assert data["model"] == "tiny-1b"
    assert [f"{c['backend']}/{c['id']}" for c in data["candidates"]] == ["b/tiny-1b", "a/coder-7b", "b/coder-7b"]
    assert data["hints"]["needs_tools"] is True
    assert data["hints"]["prefers_fast"] is True
    assert data["reasons"][0] == "b/tiny-1b: role:fast 'tiny'"
    assert response.headers["X-Model-Resolution"] == data["explanation"]
    embed = client.post("/v1/resolve", json={"model": "auto", "input": "x"}).json()
    assert (embed["endpoint"], embed["model"]) == ("embeddings", "nomic-embed-text")
    missing = client.post("/v1/resolve", json={"model": "nothing-like-it", **CHAT})
    assert missing.status_code == 404


def test_swarm_models(client: TestClient) -> None:
    data = client.get("/swarm/models").json()
    assert data["models"] == ["coder-7b", "tiny-1b"]
    assert data["roles"] == {"coder": ["coder-7b"], "fast": ["tiny"]}
    assert data["loaded"] == []
    assert data["swarm"]["chat_default_strategy"] == "best-of-n"
