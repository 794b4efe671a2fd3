"""An answer cut off at its token limit says so on every surface: chat (``length``), swarms (the
winner's ``length``), the Responses API (``incomplete`` / ``max_output_tokens``, OpenAI's shape) and
the Messages API (``max_tokens``), streamed or not. The fakes count a word as a token."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import orjson
import pytest
from starlette.testclient import TestClient

from local_lattice.api.app import create_app
from local_lattice.backends.fake import FakeBackend
from local_lattice.config import Config

LONG = "one two three four five six seven eight nine ten eleven twelve"
MESSAGES = [{"role": "user", "content": "Count."}]


@pytest.fixture
def client() -> Iterator[TestClient]:
    backends = {"f": FakeBackend.with_models("f", "m1", "m2", reply=LONG, loaded=True)}
    with TestClient(create_app(Config(), backends)) as test_client:
        yield test_client


def sse(text: str) -> list[dict[str, Any]]:
    return [orjson.loads(line[6:]) for line in text.splitlines() if line.startswith("data: {")]


def named(text: str) -> list[tuple[str, dict[str, Any]]]:
    events, name = [], ""
    for line in text.splitlines():
        if line.startswith("event: "):
            name = line[7:]
        elif line.startswith("data: {"):
            events.append((name, orjson.loads(line[6:])))
    return events


def finish_of_stream(text: str) -> list[str]:
    return [c["finish_reason"] for chunk in sse(text) for c in chunk.get("choices", []) if c.get("finish_reason")]


@pytest.mark.parametrize("max_tokens", [4, None])
def test_chat_reports_length_only_when_cut(client: TestClient, max_tokens: int | None) -> None:
    body: dict[str, Any] = {"model": "m1", "messages": MESSAGES, "max_tokens": max_tokens}
    expected = "length" if max_tokens else "stop"
    assert client.post("/v1/chat/completions", json=body).json()["choices"][0]["finish_reason"] == expected
    streamed = client.post("/v1/chat/completions", json={**body, "stream": True}).text
    assert finish_of_stream(streamed) == [expected]


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/swarm/vote", {"models": ["m1", "m2"], "strategy": "longest"}),
        ("/swarm/vote", {"models": ["m1", "m2"], "judge": "m1"}),
        ("/v1/chat/completions", {"model": "swarmCouncil", "swarm": {"models": ["m1", "m2"], "judge": "m2"}}),
        ("/v1/chat/completions", {"model": "swarmCouncil", "swarm": {"models": ["m1"], "strategy": "first-success"}}),
    ],
)
def test_a_swarm_keeps_its_winners_length(client: TestClient, path: str, body: dict[str, Any]) -> None:
    full = {**body, "messages": MESSAGES, "max_tokens": 4}
    answer = client.post(path, json=full).json()
    assert answer["choices"][0]["finish_reason"] == "length"
    assert {c["finish_reason"] for c in answer["swarm"]["candidates"] if c["ok"]} == {"length"}
    streamed = client.post(path, json={**full, "stream": True}).text
    assert finish_of_stream(streamed) == ["length"]


def test_a_swarm_whose_winner_finished_says_stop(client: TestClient) -> None:
    answer = client.post("/swarm/vote", json={"models": ["m1", "m2"], "messages": MESSAGES, "judge": "m1"}).json()
    assert answer["choices"][0]["finish_reason"] == "stop"


def test_responses_cut_at_max_output_tokens_are_incomplete(client: TestClient) -> None:
    body = {"model": "m1", "input": "Count.", "max_output_tokens": 4}
    data = client.post("/v1/responses", json=body).json()
    assert data["status"] == "incomplete"
    assert data["incomplete_details"] == {"reason": "max_output_tokens"}
    assert data["output"][0]["status"] == "incomplete"
    assert data["output"][0]["content"][0]["text"] == "one two three four"
    assert data["usage"]["output_tokens"] == 4

    events = named(client.post("/v1/responses", json={**body, "stream": True}).text)
    assert events[-1][0] == "response.incomplete"
    final = events[-1][1]["response"]
    assert (final["status"], final["incomplete_details"]) == ("incomplete", {"reason": "max_output_tokens"})
    assert "response.completed" not in [name for name, _ in events]


def test_responses_that_finish_are_completed(client: TestClient) -> None:
    data = client.post("/v1/responses", json={"model": "m1", "input": "Count."}).json()
    assert (data["status"], data["incomplete_details"]) == ("completed", None)
    events = named(client.post("/v1/responses", json={"model": "m1", "input": "Count.", "stream": True}).text)
    assert events[-1][0] == "response.completed"


@pytest.mark.parametrize(("max_tokens", "stop"), [(4, "max_tokens"), (64, "end_turn")])
def test_messages_say_max_tokens_when_cut(client: TestClient, max_tokens: int, stop: str) -> None:
    body = {"model": "m1", "max_tokens": max_tokens, "messages": MESSAGES}
    assert client.post("/v1/messages", json=body).json()["stop_reason"] == stop
    events = named(client.post("/v1/messages", json={**body, "stream": True}).text)
    deltas = [data["delta"]["stop_reason"] for name, data in events if name == "message_delta"]
    assert deltas == [stop]
