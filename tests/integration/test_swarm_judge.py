"""The judge's position bias, end to end: the real gateway process over a scripted upstream whose
judge always names position B. Over swapped orders that judge contradicts itself, so no verdict
stands; the answer says so and falls back to the majority of the answers, then the longest."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import httpx
import pytest

from tests.support.procs import RunningProcess
from tests.support.servers import backends_toml, gateway_process
from tests.support.upstream import scripted_upstream_process

pytestmark = pytest.mark.slow
QUESTION = [{"role": "user", "content": "What is the capital of France?"}]


def _agent(answer: str) -> dict[str, object]:
    # ``echo`` answers with the last message it is sent: each agent gets its own answer to give.
    return {"model": "echo", "messages": [{"role": "user", "content": answer}]}


@pytest.fixture(scope="module")
def gateway() -> Iterator[RunningProcess]:
    with contextlib.ExitStack() as stack:
        upstream = stack.enter_context(scripted_upstream_process(["echo", "judge-b"]))
        yield stack.enter_context(gateway_process(backends_toml([("scripted", upstream.url)])))


@pytest.fixture(scope="module")
def http(gateway: RunningProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=gateway.url, timeout=60) as client:
        yield client


def _vote(http: httpx.Client, answers: list[str], **extra: object) -> dict[str, object]:
    body = {"models": [_agent(a) for a in answers], "judge": "judge-b", "messages": QUESTION, **extra}
    resp = http.post("/swarm/vote", json=body)
    assert resp.status_code == 200, resp.text
    data: dict[str, object] = resp.json()
    return data


def test_a_judge_that_always_names_b_is_inconsistent_and_the_longest_answer_wins(http: httpx.Client) -> None:
    data = _vote(http, ["Paris", "The capital of France is Paris."])
    swarm = data["swarm"]
    assert isinstance(swarm, dict)
    verdict = swarm["judge"]
    assert verdict["passes"] == 2
    assert verdict["consistent"] is False
    # The two passes saw the candidates in swapped orders, and each named the one shown second.
    first, second = verdict["verdicts"]
    assert first["order"] == list(reversed(second["order"]))
    assert [first["label"], second["label"]] == ["B", "B"]
    assert first["agent_id"] != second["agent_id"]
    assert "disagreed" in verdict["fallback_reason"]
    assert "longest answer" in verdict["fallback_reason"]
    assert swarm["winner_agent"] == "agent-1"
    assert data["choices"][0]["message"]["content"] == "The capital of France is Paris."  # type: ignore[index]
    cost = swarm["cost"]
    assert cost["calls"] == 4  # two agents, two judge passes
    assert cost["tokens"] == 8
    assert cost["single"] == {"calls": 1, "tokens": 2, "latency_ms": cost["single"]["latency_ms"]}
    assert cost["tokens_ratio"] == 4.0
    assert cost["latency_ms"] > 0


def test_an_inconsistent_judge_falls_back_to_the_answers_majority(http: httpx.Client) -> None:
    data = _vote(http, ["Lyon, a fine and large city", "Paris", "Paris."])
    swarm = data["swarm"]
    assert isinstance(swarm, dict)
    assert swarm["judge"]["consistent"] is False
    # Rotated, not reversed: the candidate shown as B moves too, so even with three a B-judge disagrees.
    assert "majority of the answers (2 agree)" in swarm["judge"]["fallback_reason"]
    assert data["choices"][0]["message"]["content"] == "Paris"  # type: ignore[index]
    assert swarm["cost"]["calls"] == 5


def test_three_passes_let_the_passes_majority_decide() -> None:
    # With two candidates the third pass repeats one of the first two orders: B names one of them twice.
    with scripted_upstream_process(["echo", "judge-b"]) as upstream:
        toml = backends_toml([("scripted", upstream.url)])
        with gateway_process(toml, env={"SWARM_JUDGE_PASSES": "3"}) as gw, httpx.Client(base_url=gw.url) as http:
            swarm = _vote(http, ["Paris", "The capital of France is Paris."])["swarm"]
    assert isinstance(swarm, dict)
    verdict = swarm["judge"]
    assert verdict["passes"] == 3
    assert verdict["consistent"] is False
    assert "majority of the judge's passes (2 of 3)" in verdict["fallback_reason"]
    third = verdict["verdicts"][2]
    assert swarm["winner_agent"] == third["agent_id"]
    assert swarm["cost"]["calls"] == 5
