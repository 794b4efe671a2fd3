"""The swarm routes and chat meta-models over fake backends (the app in-process, no sockets)."""

from __future__ import annotations

from collections.abc import Iterator

import orjson
import pytest
from starlette.testclient import TestClient

from local_lattice.api.app import create_app
from local_lattice.backends.fake import FakeBackend
from local_lattice.config import Config
from local_lattice.errors import UpstreamError
from tests.unit.swarm.conftest import judge_picks

MESSAGES = [{"role": "user", "content": "What is the capital of France?"}]
ANSWER = "The capital of France is Paris, on the Seine."


@pytest.fixture
def fakes() -> dict[str, FakeBackend]:
    return {
        "b1": FakeBackend.with_models("b1", "short", reply="Paris", loaded=True),
        "b2": FakeBackend.with_models("b2", "long", reply=ANSWER, loaded=True),
        "j": FakeBackend.with_models("j", "judge", script=judge_picks("Seine")),  # type: ignore[arg-type]
    }


@pytest.fixture
def client(fakes: dict[str, FakeBackend]) -> Iterator[TestClient]:
    config = Config.model_validate({"swarm": {"chat_default_judge": "judge", "chat_default_models": ["short", "long"]}})
    with TestClient(create_app(config, fakes)) as test_client:
        yield test_client


@pytest.fixture
def strict(fakes: dict[str, FakeBackend]) -> Iterator[TestClient]:
    """ON_MODEL_MISS=error: an agent whose model matches nothing fails instead of falling back."""
    config = Config.model_validate({"routing": {"on_model_miss": "error"}})
    with TestClient(create_app(config, fakes)) as test_client:
        yield test_client


def test_vote(client: TestClient) -> None:
    resp = client.post("/swarm/vote", json={"models": ["short", "long"], "judge": "judge", "messages": MESSAGES})
    assert resp.status_code == 200
    data = resp.json()
    assert data["object"] == "chat.completion"
    assert data["model"] == "swarm/long"
    assert data["swarm"]["winner"] == "long"
    assert len(data["swarm"]["candidates"]) == 2
    assert resp.headers["X-Swarm-Strategy"] == "best-of-n"
    assert resp.headers["X-Swarm-Winner"] == "long"
    assert resp.headers["X-Model-Routed-To"] == "swarm/long"
    assert data["usage"]["total_tokens"] == data["swarm"]["usage"]["total"]["total_tokens"] > 0


@pytest.mark.parametrize(
    ("path", "body", "param"),
    [
        ("/swarm/vote", {"messages": MESSAGES}, "models"),
        ("/swarm/vote", {"models": ["short"]}, "messages"),
        ("/swarm/vote", {"models": ["short"], "messages": MESSAGES, "strategy": "coin-flip"}, "strategy"),
        ("/swarm/fanout", {"models": "short"}, "messages"),
        ("/swarm/pipeline", {"messages": MESSAGES}, "steps"),
        ("/swarm/pipeline", {"steps": [{"model": "short"}]}, "messages"),
        ("/swarm/debate", {"models": ["short"], "messages": MESSAGES}, "models"),
        ("/swarm/debate", {"models": ["short", "long"]}, "messages"),
    ],
)
def test_bad_input_is_400(client: TestClient, path: str, body: dict[str, object], param: str) -> None:
    resp = client.post(path, json=body)
    assert resp.status_code == 400, resp.text
    assert resp.json()["error"]["param"] == param


def test_all_failed_is_502_with_details(strict: TestClient, fakes: dict[str, FakeBackend]) -> None:
    fakes["b1"].fail_with = UpstreamError("backend 'b1' answered 500: kaboom")
    resp = strict.post("/swarm/vote", json={"models": ["short", "missing"], "messages": MESSAGES})
    assert resp.status_code == 502
    body = resp.json()
    assert body["error"]["code"] == "swarm_all_failed"
    assert body["error_details"]["kinds"] == {"model_not_resolved": 1, "model_crashed": 1}
    assert resp.headers["X-Swarm-Error-Kinds"] == "model_crashed=1,model_not_resolved=1"


def test_only_unknown_models_is_a_404_with_details(strict: TestClient) -> None:
    resp = strict.post("/swarm/vote", json={"models": ["nosuch", "missing"], "messages": MESSAGES})
    assert resp.status_code == 404
    body = resp.json()
    assert body["error"]["code"] == "model_not_found"
    assert body["error_details"]["kinds"] == {"model_not_resolved": 2}
    assert resp.headers["X-Swarm-Error-Kinds"] == "model_not_resolved=2"


def test_unknown_agents_and_judge_fall_back_and_say_so(client: TestClient) -> None:
    body = {"models": ["role:coder", "nosuch"], "judge": "role:reasoner", "messages": MESSAGES}
    resp = client.post("/swarm/vote", json=body)
    assert resp.status_code == 200
    data = resp.json()
    rows = data["swarm"]["candidates"]
    assert [r["ok"] for r in rows] == [True, True]
    assert all(r["resolution"].startswith("fallback (requested ") for r in rows)
    assert "'nosuch'" in rows[1]["resolution"]
    judge = data["swarm"]["judge"]
    assert (judge["model"], judge["raw"]) == ("short", "Paris")  # the judge ran, on the first available model


def test_fanout(client: TestClient) -> None:
    resp = client.post("/swarm/fanout", json={"models": "auto", "messages": MESSAGES})
    data = resp.json()
    assert resp.status_code == 200
    assert data["object"] == "swarm.fanout"
    assert sorted(r["model"] for r in data["results"]) == ["long", "short"]
    assert "X-Swarm-Winner" not in resp.headers  # every answer counts alike
    assert sorted(resp.headers["X-Swarm-Models"].split(",")) == ["long", "short"]
    chat = client.post("/v1/chat/completions", json={"model": "swarm/fanout", "messages": MESSAGES, "stream": True})
    assert chat.status_code == 200
    assert "X-Swarm-Winner" not in chat.headers


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/swarm/vote", {"models": ["short", "long"], "judge": "judge"}),
        ("/swarm/fanout", {"models": ["short", "long"]}),
        ("/swarm/pipeline", {"steps": [{"name": "a", "model": "short"}, {"name": "b", "model": "long"}]}),
        ("/swarm/debate", {"models": ["short", "long"], "judge": "judge", "rounds": 1}),
        ("/v1/chat/completions", {"model": "swarmCouncil", "swarm": {"models": ["short", "long"]}}),
    ],
)
@pytest.mark.parametrize("stream", [False, True])
def test_swarm_answers_carry_real_timings(
    client: TestClient, fakes: dict[str, FakeBackend], path: str, body: dict[str, object], stream: bool
) -> None:
    fakes["b1"].delay = fakes["b2"].delay = 0.02
    resp = client.post(path, json={**body, "messages": MESSAGES, "stream": stream})
    assert resp.status_code == 200
    ms = {name: float(resp.headers[f"X-Lattice-{name}-Ms"]) for name in ("Resolve", "Queue", "Upstream", "Total")}
    assert ms["Resolve"] > 0
    assert ms["Upstream"] >= 20  # the agents' own time
    assert ms["Total"] >= ms["Upstream"] + ms["Resolve"] - 0.01


def test_fanout_responses_are_the_original_rows(client: TestClient, fakes: dict[str, FakeBackend]) -> None:
    fakes["b1"].fail_with = UpstreamError("backend 'b1' answered 500: kaboom", code="upstream_500")
    resp = client.post("/swarm/fanout", json={"models": ["role:none,short", "long"], "messages": MESSAGES})
    assert resp.status_code == 200, resp.text
    failed, answered = resp.json()["responses"]
    assert failed["agent_id"] == "role:none,short"  # the spec as the caller wrote it
    assert (failed["model"], failed["ok"], failed["error_kind"], failed["http_status"]) == (
        "short", False, "upstream_5xx", 500
    )  # fmt: skip
    assert isinstance(failed["error_detail"], str)
    assert "kaboom" in failed["error_detail"]
    assert (answered["agent_id"], answered["ok"], answered["text"], answered["error"]) == ("long", True, ANSWER, None)
    assert isinstance(answered["latency_ms"], int)
    assert answered["response"]["object"] == "chat.completion"
    assert set(answered) >= {"agent_id", "model", "ok", "text", "error", "error_kind", "http_status", "error_detail"}
    assert resp.headers["X-Swarm-Models"] == "short,long"


def test_pipeline(client: TestClient) -> None:
    steps = [{"name": "a", "model": "short"}, {"name": "b", "model": "long", "user": "improve {{a}}"}]
    resp = client.post("/swarm/pipeline", json={"steps": steps, "messages": MESSAGES})
    data = resp.json()
    assert resp.status_code == 200
    assert data["model"] == "swarm/pipeline/long"  # the original's name: the last step's model
    assert [h["name"] for h in data["swarm"]["history"]] == ["a", "b"]
    assert resp.headers["X-Swarm-Steps"] == "a,b"


def test_step_names_in_the_header_are_escaped(client: TestClient) -> None:
    steps = [{"name": "plan, then\r\nX-Evil: 1", "model": "short"}, {"name": "résumé 100%", "model": "long"}]
    resp = client.post("/swarm/pipeline", json={"steps": steps, "messages": MESSAGES})
    assert resp.status_code == 200, resp.text
    assert resp.headers["X-Swarm-Steps"] == "plan%2C then%0D%0AX-Evil: 1,r%C3%A9sum%C3%A9 100%25"
    assert "X-Evil" not in resp.headers
    assert [h["name"] for h in resp.json()["swarm"]["history"]] == [s["name"] for s in steps]  # the body keeps them


def test_pipeline_unnamed_steps_are_step_0_step_1(client: TestClient, fakes: dict[str, FakeBackend]) -> None:
    steps = [{"model": "short"}, {"model": "long", "user": "Improve: {{step_0}}"}]
    resp = client.post("/swarm/pipeline", json={"steps": steps, "messages": MESSAGES})
    assert resp.status_code == 200, resp.text
    assert resp.headers["X-Swarm-Steps"] == "step_0,step_1"
    assert fakes["b2"].seen[-1].body["messages"][-1]["content"] == "Improve: Paris"


def test_pipeline_failed_step(client: TestClient, fakes: dict[str, FakeBackend]) -> None:
    fakes["b2"].fail_with = UpstreamError("backend 'b2' answered 500: kaboom")
    steps = [{"name": "a", "model": "short"}, {"name": "b", "model": "long"}]
    resp = client.post("/swarm/pipeline", json={"steps": steps, "input": "hi"})
    assert resp.status_code == 502
    assert [h["name"] for h in resp.json()["error_details"]["history"]] == ["a", "b"]


def test_pipeline_step_with_an_unknown_model_is_a_404(strict: TestClient) -> None:
    steps = [{"name": "a", "model": "short"}, {"name": "b", "model": "nosuch"}]
    resp = strict.post("/swarm/pipeline", json={"steps": steps, "input": "hi"})
    assert resp.status_code == 404
    assert [h["name"] for h in resp.json()["error_details"]["history"]] == ["a", "b"]


def test_debate(client: TestClient, fakes: dict[str, FakeBackend]) -> None:
    fakes["j"].script = None
    fakes["j"].reply = "Paris."
    resp = client.post("/swarm/debate", json={"models": ["short", "long"], "judge": "judge", "messages": MESSAGES})
    data = resp.json()
    assert resp.status_code == 200
    assert data["choices"][0]["message"]["content"] == "Paris."
    assert data["swarm"]["strategy"] == "debate"
    assert data["swarm"]["rounds"] == 2
    assert len(data["swarm"]["transcript"]) == 4
    assert data["model"] == "swarm/debate/judge"
    assert resp.headers["X-Swarm-Rounds"] == "2"


def test_debate_defaults_to_the_roles_and_the_reasoner_judge() -> None:
    roles = {"reasoner": ["judge"], "fast": ["short"], "coder": ["long"]}
    fakes = {
        "b1": FakeBackend.with_models("b1", "short", reply="Paris"),
        "b2": FakeBackend.with_models("b2", "long", reply="Paris, on the Seine."),
        "j": FakeBackend.with_models("j", "judge", reply="Paris."),
    }
    with TestClient(create_app(Config.model_validate({"roles": roles}), fakes)) as test_client:
        resp = test_client.post("/swarm/debate", json={"messages": MESSAGES, "rounds": 1})
    assert resp.status_code == 200, resp.text
    swarm = resp.json()["swarm"]
    assert [t["model"] for t in swarm["transcript"]] == ["judge", "short", "long"]
    assert swarm["judge"] == "judge"
    assert resp.json()["model"] == "swarm/debate/judge"


@pytest.mark.parametrize(
    ("model", "intent", "canonical"),
    [
        ("swarmCouncil", "council", "swarmCouncil"),
        ("SWARMVOTE", "council", "swarmCouncil"),
        ("swarm/vote", "council", "swarmCouncil"),
        ("swarmIntelligence", "council", "swarmCouncil"),
        ("swarm/fanout", "fanout", "swarm/fanout"),
    ],
)
def test_chat_meta_models(client: TestClient, model: str, intent: str, canonical: str) -> None:
    resp = client.post("/v1/chat/completions", json={"model": model, "messages": MESSAGES})
    assert resp.status_code == 200, resp.text
    assert resp.headers["X-Swarm-Intent"] == intent
    # Only an alias is told its canonical name.
    assert resp.headers.get("X-Swarm-Canonical-Name") == (None if model == canonical else canonical)
    assert resp.headers["X-Model-Routed-To"].startswith("swarm/")
    assert ("Deprecation" in resp.headers) == (model == "swarmIntelligence")


def test_an_explicit_strategy_wins_over_the_fanout_intent(client: TestClient) -> None:
    body = {
        "model": "swarm/fanout",
        "messages": MESSAGES,
        "swarm": {"models": ["short", "long"], "strategy": "longest"},
    }
    resp = client.post("/v1/chat/completions", json=body)
    assert resp.status_code == 200, resp.text
    assert resp.headers["X-Swarm-Strategy"] == "longest"
    assert resp.json()["swarm"]["winner"] == "long"


def test_a_failed_alias_still_names_its_canonical(client: TestClient, fakes: dict[str, FakeBackend]) -> None:
    fakes["b1"].fail_with = UpstreamError("backend 'b1' answered 500: kaboom")
    resp = client.post(
        "/v1/chat/completions", json={"model": "swarmVote", "messages": MESSAGES, "swarm": {"models": ["short"]}}
    )
    assert resp.status_code == 502
    assert resp.headers["X-Swarm-Canonical-Name"] == "swarmCouncil"


def test_chat_pipeline_points_to_the_route(client: TestClient) -> None:
    resp = client.post("/v1/chat/completions", json={"model": "swarm/pipeline", "messages": MESSAGES})
    assert resp.status_code == 400
    assert "/swarm/pipeline" in resp.json()["error"]["message"]
    assert resp.json()["error"]["redirect"] == "POST /swarm/pipeline"


def test_chat_swarm_options_and_stream(client: TestClient) -> None:
    body = {
        "model": "swarmCouncil",
        "messages": MESSAGES,
        "stream": True,
        "swarm": {"models": ["short", "long"], "strategy": "longest", "max_parallel": 1},
    }
    with client.stream("POST", "/v1/chat/completions", json=body) as resp:
        assert resp.status_code == 200
        assert resp.headers["X-Swarm-Winner"] == "long"
        events = [line[6:] for line in resp.iter_lines() if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    chunks = [orjson.loads(e) for e in events[:-1]]
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks)
    assert text == "The capital of France is Paris, on the Seine."
    assert chunks[-1]["swarm"]["strategy"] == "longest"
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"


def test_chat_stream_first_success_relays_live(client: TestClient, fakes: dict[str, FakeBackend]) -> None:
    fakes["b1"].delay = 0.05  # long enough for the slow member to have opened its stream
    fakes["b2"].delay = 5
    body = {"model": "swarmCouncil", "messages": MESSAGES, "stream": True, "swarm": {"strategy": "first-success"}}
    with client.stream("POST", "/v1/chat/completions", json=body) as resp:
        events = [line[6:] for line in resp.iter_lines() if line.startswith("data: ")]
    assert resp.headers["X-Model-Routed-To"] == "swarm/short"
    final = orjson.loads(events[-2])
    assert final["swarm"]["winner"] == "short"
    assert [c.get("cancelled", False) for c in final["swarm"]["candidates"]] == [False, True]
    assert fakes["b2"].closed_streams == 1


def test_chat_stream_all_failed_is_a_502_before_streaming(client: TestClient, fakes: dict[str, FakeBackend]) -> None:
    fakes["b1"].fail_with = UpstreamError("backend 'b1' answered 500: kaboom")
    body = {"model": "swarmCouncil", "messages": MESSAGES, "stream": True, "swarm": {"models": ["short"]}}
    resp = client.post("/v1/chat/completions", json=body)
    assert resp.status_code == 502
    assert resp.headers["X-Swarm-Error-Kinds"] == "model_crashed=1"


def test_swarm_models(client: TestClient) -> None:
    data = client.get("/swarm/models").json()
    assert data["loaded"] == ["short", "long"]
    assert data["swarm"]["chat_default_strategy"] == "best-of-n"
    # The original's fields beside ours.
    assert (data["max_parallel"], data["max_concurrent_models"]) == (4, 2)
    assert (data["anthropic_available"], data["anthropic_model"]) == (False, None)
    assert data["swarm_chat_enabled"] is True
    assert data["swarm_chat_default_models"] == ["short", "long"]
    assert data["swarm_chat_default_strategy"] == "best-of-n"
