"""Swarm answers in the original's shapes, black-box over a scripted upstream process whose model
names pick what they do (``boom-500`` answers 500, ``empty`` answers with no content, ``echo``
repeats the last message). After every failure nothing is left running or waiting."""

from __future__ import annotations

import httpx
import pytest

from tests.compat.original.conftest import settled

pytestmark = pytest.mark.slow

ASK = [{"role": "user", "content": "Name a colour."}]
ROW = {
    "agent_id",
    "model",
    "ok",
    "text",
    "error",
    "error_kind",
    "http_status",
    "error_detail",
    "latency_ms",
    "response",
}


def test_fanout_rows_name_the_callers_spec_and_the_failure(scripted: httpx.Client) -> None:
    response = scripted.post("/swarm/fanout", json={"models": ["role:fast", "boom-500"], "messages": ASK})
    assert response.status_code == 200, response.text
    assert response.headers["x-swarm-models"] == "fast-model,boom-500"
    answered, failed = response.json()["responses"]
    assert answered.keys() >= ROW
    assert (answered["agent_id"], answered["model"], answered["ok"], answered["text"]) == (
        "role:fast", "fast-model", True, "ok"
    )  # fmt: skip
    assert (answered["error"], answered["error_kind"], answered["http_status"], answered["error_detail"]) == (
        None, None, None, None
    )  # fmt: skip
    assert isinstance(answered["latency_ms"], int)
    assert answered["response"]["choices"][0]["message"]["content"] == "ok"
    assert (failed["agent_id"], failed["ok"], failed["error_kind"], failed["http_status"]) == (
        "boom-500", False, "upstream_5xx", 500
    )  # fmt: skip
    assert isinstance(failed["error_detail"], str)
    assert "kaboom" in failed["error_detail"]
    assert settled(scripted) == {"inflight": 0, "queued": 0}


def test_all_failed_is_a_502_with_a_count_by_status(scripted: httpx.Client) -> None:
    response = scripted.post("/swarm/vote", json={"models": ["boom-500", "boom-500"], "messages": ASK})
    assert response.status_code == 502
    body = response.json()
    assert body["error"]["code"] == "swarm_all_failed"  # OpenAI's envelope, the original's details beside it
    details = body["error_details"]
    assert (details["agent_count"], details["kinds"], details["upstream_statuses"]) == (
        2, {"upstream_5xx": 2}, {"500": 2}
    )  # fmt: skip
    assert details["summary"].startswith("all 2 swarm agents failed")
    assert all(isinstance(agent["error_detail"], str) for agent in details["agents"])
    assert response.headers["x-swarm-error-kinds"] == "upstream_5xx=2"
    assert settled(scripted) == {"inflight": 0, "queued": 0}


def test_all_empty_answers_tell_the_user_to_raise_max_tokens(scripted: httpx.Client) -> None:
    response = scripted.post("/swarm/vote", json={"models": ["empty", "empty"], "messages": ASK, "max_tokens": 16})
    assert response.status_code == 502
    details = response.json()["error_details"]
    assert details["kinds"] == {"empty_response": 2}
    assert "raise max_tokens" in details["summary"]
    assert all(agent["response"]["object"] == "chat.completion" for agent in details["agents"])  # kept to recover
    assert response.headers["x-swarm-error-kinds"] == "empty_response=2"


def test_pipeline_default_step_names_work_as_templates(scripted: httpx.Client) -> None:
    steps = [{"model": "role:fast"}, {"model": "echo", "user": "Earlier: {{step_0}} / {{previous}} / {{nope}}"}]
    response = scripted.post("/swarm/pipeline", json={"steps": steps, "messages": ASK})
    assert response.status_code == 200, response.text
    assert (response.headers["x-swarm-strategy"], response.headers["x-swarm-steps"]) == ("pipeline", "step_0,step_1")
    body = response.json()
    assert body["model"] == "swarm/pipeline/echo"
    assert [(h["name"], h["model"]) for h in body["swarm"]["history"]] == [("step_0", "fast-model"), ("step_1", "echo")]
    assert body["choices"][0]["message"]["content"] == "Earlier: ok / ok / {{nope}}"  # unknown placeholders stay


def test_a_failed_pipeline_step_is_a_502_with_the_history(scripted: httpx.Client) -> None:
    steps = [{"model": "fast-model"}, {"model": "boom-500"}]
    response = scripted.post("/swarm/pipeline", json={"steps": steps, "messages": ASK})
    assert response.status_code == 502
    details = response.json()["error_details"]
    assert [h["name"] for h in details["history"]] == ["step_0", "step_1"]
    assert details["upstream_statuses"] == {"500": 1}


def test_debate_defaults_to_the_roles_and_judges_with_the_reasoner(scripted: httpx.Client) -> None:
    response = scripted.post("/swarm/debate", json={"messages": ASK, "rounds": 1})
    assert response.status_code == 200, response.text
    assert (response.headers["x-swarm-strategy"], response.headers["x-swarm-rounds"]) == ("debate", "1")
    body = response.json()
    swarm = body["swarm"]
    assert [t["model"] for t in swarm["transcript"]] == ["reasoner-model", "fast-model", "coder-model"]
    assert swarm["judge"] == "reasoner-model"
    assert body["model"] == "swarm/debate/reasoner-model"


@pytest.mark.parametrize(
    ("model", "canonical"),
    [("swarmCouncil", None), ("swarmVote", "swarmCouncil"), ("swarm/vote", "swarmCouncil"), ("swarm/fanout", None)],
)
def test_canonical_name_only_for_an_alias(scripted: httpx.Client, model: str, canonical: str | None) -> None:
    body = {"model": model, "messages": ASK, "swarm": {"models": ["fast-model", "coder-model"], "judge": "echo"}}
    response = scripted.post("/v1/chat/completions", json=body)
    assert response.status_code == 200, response.text
    assert response.headers.get("x-swarm-canonical-name") == canonical
    assert response.headers["x-model-routed-to"].startswith("swarm/")
    assert response.json()["model"].startswith("swarm/")


def test_an_explicit_strategy_wins_over_swarm_fanout(scripted: httpx.Client) -> None:
    swarm = {"models": ["fast-model", "echo"], "strategy": "longest"}
    response = scripted.post("/v1/chat/completions", json={"model": "swarm/fanout", "messages": ASK, "swarm": swarm})
    assert response.status_code == 200, response.text
    assert (response.headers["x-swarm-intent"], response.headers["x-swarm-strategy"]) == ("fanout", "longest")
    assert response.json()["swarm"]["winner"] == "echo"  # "Name a colour." is longer than "ok"


def test_swarm_pipeline_on_chat_points_to_the_route(scripted: httpx.Client) -> None:
    response = scripted.post("/v1/chat/completions", json={"model": "swarm/pipeline", "messages": ASK})
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["redirect"] == "POST /swarm/pipeline"
    assert "/swarm/pipeline" in error["message"]


def test_a_failed_alias_still_names_its_canonical(scripted: httpx.Client) -> None:
    body = {"model": "swarmVote", "messages": ASK, "swarm": {"models": ["boom-500"]}}
    response = scripted.post("/v1/chat/completions", json=body)
    assert response.status_code == 502
    assert response.headers["x-swarm-canonical-name"] == "swarmCouncil"
    assert response.headers["x-swarm-error-kinds"] == "upstream_5xx=1"
    assert settled(scripted) == {"inflight": 0, "queued": 0}
