"""/v1/messages and the escalation paths through the HTTP layer, with fake backends (no sockets)."""

from __future__ import annotations

import itertools
from collections.abc import AsyncGenerator, Iterator
from typing import Any

import orjson
import pytest
from starlette.testclient import TestClient

from local_lattice.api.app import create_app
from local_lattice.backends.fake import FakeBackend
from local_lattice.config import Config
from local_lattice.errors import BackendUnavailable
from local_lattice.gateway import Gateway
from local_lattice.types import BackendRequest, StreamChunk, Usage

BIG = " ".join(["Describe how a fair scheduler shares two cores between many tenants without starving anyone."] * 6)
SMALL = "Say hi."
BIG_CODE = "```python\n" + "\n".join(f"def f{i}(x):\n    return x * {i}" for i in range(60)) + "\n```"
CLOUD = "anthropic/claude-sonnet-4-5"
LOCAL = "local/smol"


def make_config(**escalation: Any) -> Config:
    return Config.model_validate(
        {
            "backends": [
                {"name": "local", "url": "http://127.0.0.1:9/v1"},
                {
                    "name": "anthropic",
                    "type": "anthropic",
                    "api_key": "sk-ant-test",
                    "models": ["claude-sonnet-4-5"],
                    "input_usd_per_mtok": 3,
                    "output_usd_per_mtok": 15,
                },
            ],
            "escalation": escalation,
        }
    )


class FakeWithUsage(FakeBackend):
    """Sends the usage-only chunk when the request asks for it, as OpenAI-compatible servers do."""

    async def _stream(self, request: BackendRequest) -> AsyncGenerator[StreamChunk, None]:
        async for chunk in super()._stream(request):
            yield chunk
        if (request.body.get("stream_options") or {}).get("include_usage"):
            usage = Usage(3, len(self.reply.split()))
            yield StreamChunk(orjson.dumps({"choices": [], "usage": usage.as_dict()}), usage)


@pytest.fixture
def fakes() -> dict[str, FakeBackend]:
    return {
        "local": FakeWithUsage.with_models("local", "smol", reply="local answer"),
        "anthropic": FakeWithUsage.with_models("anthropic", "claude-sonnet-4-5", reply="cloud answer here"),
    }


def client_for(config: Config, fakes: dict[str, FakeBackend]) -> Iterator[TestClient]:
    with TestClient(create_app(config, dict(fakes))) as client:
        yield client


@pytest.fixture
def client(fakes: dict[str, FakeBackend]) -> Iterator[TestClient]:
    yield from client_for(make_config(), fakes)


def gateway(client: TestClient) -> Gateway:
    gw: Gateway = client.app.state.gateway  # type: ignore[attr-defined]
    return gw


def chat(client: TestClient, text: str, model: str = "smol", **extra: Any) -> Any:
    return client.post(
        "/v1/chat/completions", json={"model": model, "messages": [{"role": "user", "content": text}], **extra}
    )


def sse_data(raw: str) -> list[dict[str, Any]]:
    return [orjson.loads(line[6:]) for line in raw.splitlines() if line.startswith("data: {")]


def named_events(raw: str) -> list[tuple[str, dict[str, Any]]]:
    out = []
    for block in raw.strip().split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.splitlines())
        out.append((lines["event"], orjson.loads(lines["data"])))
    return out


# --- /v1/messages -----------------------------------------------------------------------------


def test_messages_non_stream_on_a_local_backend(client: TestClient, fakes: dict[str, FakeBackend]) -> None:
    body = {"model": "smol", "max_tokens": 20, "system": "Be brief.", "messages": [{"role": "user", "content": SMALL}]}
    resp = client.post("/v1/messages", json=body, headers={"anthropic-version": "2023-06-01", "x-api-key": "any"})
    assert resp.status_code == 200
    data = resp.json()
    assert data["type"] == "message"
    assert data["role"] == "assistant"
    assert data["model"] == "smol"
    assert data["content"] == [{"type": "text", "text": "local answer"}]
    assert data["stop_reason"] == "end_turn"
    assert data["usage"] == {"input_tokens": 3, "output_tokens": 2}
    assert resp.headers["x-model-routed-to"] == LOCAL
    sent = fakes["local"].seen[0].body
    assert sent["messages"][0] == {"role": "system", "content": "Be brief."}


def test_messages_stream_event_order(client: TestClient) -> None:
    body = {"model": "smol", "max_tokens": 20, "stream": True, "messages": [{"role": "user", "content": SMALL}]}
    resp = client.post("/v1/messages", json=body)
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("text/event-stream")
    events = named_events(resp.text)
    names = [n for n, _ in events]
    assert names[0] == "message_start"
    assert names[-2:] == ["message_delta", "message_stop"]
    assert names[1] == "content_block_start"
    assert names[-3] == "content_block_stop"
    text = "".join(d["delta"]["text"] for n, d in events if n == "content_block_delta")
    assert text == "local answer"


@pytest.mark.parametrize(
    ("body", "status", "kind"),
    [
        ({"model": "smol", "messages": [{"role": "user", "content": "x"}]}, 400, "invalid_request_error"),
        ({"model": "nope", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}]}, 404, "not_found_error"),
        ({"model": "anthropic:x", "max_tokens": 5, "messages": [{"role": "human", "content": "x"}]}, 400, None),
    ],
)
def test_messages_errors_use_anthropic_shape(
    fakes: dict[str, FakeBackend], body: Any, status: int, kind: str | None
) -> None:
    config = make_config()
    config.routing.on_model_miss = "error"  # a miss is a 404 here, not a fallback
    for client in client_for(config, fakes):
        resp = client.post("/v1/messages", json=body)
    assert resp.status_code == status
    data = resp.json()
    assert data["type"] == "error"
    assert data["error"]["message"]
    if kind:
        assert data["error"]["type"] == kind


def test_cloud_failure_mid_route_is_anthropic_shaped(fakes: dict[str, FakeBackend]) -> None:
    fakes["anthropic"].fail_with = BackendUnavailable("backend 'anthropic' is unreachable", backend="anthropic")
    for client in client_for(make_config(), fakes):
        body = {"model": "anthropic", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}]}
        resp = client.post("/v1/messages", json=body)
        assert resp.status_code == 503
        assert resp.json()["error"] == {"type": "api_error", "message": "backend 'anthropic' is unreachable"}


# --- cloud specs, cost and keys -----------------------------------------------------------------


def test_cloud_spec_cost_in_usage_and_priority_list(client: TestClient) -> None:
    resp = chat(client, SMALL, model="anthropic:claude-sonnet-4-5")
    assert resp.headers["x-model-routed-to"] == CLOUD
    usage = resp.json()["usage"]
    assert usage["cost_usd"] == pytest.approx((3 * 3 + 3 * 15) / 1e6)
    assert gateway(client).billing.budget.spent("anthropic") == pytest.approx(usage["cost_usd"])
    listed = chat(client, SMALL, model="missing,anthropic")
    assert listed.headers["x-model-routed-to"] == CLOUD  # a miss in the list moves on; it does not fall back
    assert "skipped missing" in listed.headers["x-model-resolution"]
    local_first = chat(client, SMALL, model="smol,anthropic")
    assert local_first.headers["x-model-routed-to"] == LOCAL
    assert "cost_usd" not in local_first.json()["usage"]


def test_stream_cost_rides_on_the_usage_chunk_only_when_asked(client: TestClient) -> None:
    asked = chat(client, SMALL, model="anthropic", stream=True, stream_options={"include_usage": True})
    chunks = sse_data(asked.text)
    assert chunks[-1]["usage"]["cost_usd"] > 0
    booked = gateway(client).billing.budget.spent("anthropic")
    assert booked == pytest.approx(chunks[-1]["usage"]["cost_usd"])
    # Not asked: usage is fetched to book the cost but the client sees the stream it asked for.
    plain = chat(client, SMALL, model="anthropic", stream=True)
    assert all("usage" not in c for c in sse_data(plain.text))
    assert gateway(client).billing.budget.spent("anthropic") == pytest.approx(2 * booked)


def test_missing_key_and_missing_cloud_name_the_setting(fakes: dict[str, FakeBackend]) -> None:
    keyless = Config.model_validate(
        {"backends": [{"name": "local", "url": "http://127.0.0.1:9/v1"}, {"name": "anthropic", "type": "anthropic"}]}
    )
    for client in client_for(keyless, fakes):
        resp = chat(client, SMALL, model="anthropic:claude-sonnet-4-5")
        assert resp.status_code == 503
        assert "ANTHROPIC_API_KEY" in resp.json()["error"]["message"]
    nothing = Config.model_validate({"backends": [{"name": "local", "url": "http://127.0.0.1:9/v1"}]})
    for client in client_for(nothing, {"local": fakes["local"]}):  # type: ignore[arg-type]
        resp = chat(client, SMALL, model="anthropic")
        assert resp.status_code == 400
        assert "ANTHROPIC_API_KEY" in resp.json()["error"]["message"]


# --- the escalation matrix ----------------------------------------------------------------------

TEXTS = {"big-prose": BIG, "small-prose": SMALL, "big-code": BIG_CODE}


@pytest.mark.parametrize(("auto", "text", "stream"), list(itertools.product([False, True], TEXTS, [False, True])))
def test_big_task_matrix(fakes: dict[str, FakeBackend], auto: bool, text: str, stream: bool) -> None:
    for client in client_for(make_config(auto_route=auto), fakes):
        resp = chat(client, TEXTS[text], stream=stream)
        assert resp.status_code == 200
        escalated = auto and text == "big-prose"
        assert resp.headers["x-model-routed-to"] == (CLOUD if escalated else LOCAL)
        if escalated:
            assert "big task" in resp.headers["x-model-resolution"]
            assert "escalated to anthropic/claude-sonnet-4-5" in resp.headers["x-model-resolution"]
        else:
            assert "x-model-resolution" not in resp.headers
        answer = (
            "".join(c["choices"][0]["delta"].get("content", "") for c in sse_data(resp.text))
            if stream
            else (resp.json()["choices"][0]["message"]["content"])
        )
        assert answer == ("cloud answer here" if escalated else "local answer")


@pytest.mark.parametrize(("spill", "text"), list(itertools.product([False, True], [SMALL, BIG_CODE])))
def test_queue_full_spills_only_when_configured(fakes: dict[str, FakeBackend], spill: bool, text: str) -> None:
    for client in client_for(make_config(spill_on_reject=spill), fakes):
        gateway(client).admission.would_reject = lambda model, backend: backend == "local"  # type: ignore[method-assign]
        resp = chat(client, text, stream=True)
        assert resp.headers["x-model-routed-to"] == (CLOUD if spill else LOCAL)
        if spill:
            assert "local queue full -> spilled to anthropic/claude-sonnet-4-5" in resp.headers["x-model-resolution"]


@pytest.mark.parametrize(("fallback", "stream"), list(itertools.product([False, True], [False, True])))
def test_local_failure_falls_back_only_when_configured(
    fakes: dict[str, FakeBackend], fallback: bool, stream: bool
) -> None:
    fakes["local"].fail_with = BackendUnavailable("backend 'local' is unreachable", backend="local")
    for client in client_for(make_config(fallback_on_failure=fallback), fakes):
        resp = chat(client, SMALL, stream=stream)
        if not fallback:
            assert resp.status_code == 503
            continue
        assert resp.status_code == 200
        assert resp.headers["x-model-routed-to"] == CLOUD
        reason = resp.headers["x-model-resolution"]
        assert "local/smol failed" in reason
        assert "fell back to anthropic/claude-sonnet-4-5" in reason


def test_spent_budget_keeps_escalation_local_and_direct_calls_get_429(fakes: dict[str, FakeBackend]) -> None:
    config = make_config(auto_route=True, fallback_on_failure=True)
    config.backends[1].daily_budget_usd = 0.00001
    for client in client_for(config, fakes):
        first = chat(client, BIG)
        assert first.headers["x-model-routed-to"] == CLOUD
        assert not gateway(client).billing.budget.left("anthropic")
        second = chat(client, BIG)
        assert second.headers["x-model-routed-to"] == LOCAL
        assert "budget" in second.headers["x-model-resolution"]
        direct = chat(client, SMALL, model="anthropic")
        assert direct.status_code == 429
        assert direct.json()["error"]["type"] == "budget_exceeded"
        assert int(direct.headers["retry-after"]) >= 1
        fakes["local"].fail_with = BackendUnavailable("backend 'local' is unreachable", backend="local")
        failed = chat(client, SMALL)
        assert failed.status_code == 503  # no silent cloud bill: the local error stands
        assert len(fakes["anthropic"].seen) == 1
