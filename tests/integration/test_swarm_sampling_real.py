"""Self-MoA and the adaptive majority end to end: the real gateway process over two real llama.cpp
servers, SmolLM2 135M (instruct) and Gemma 3 270M (base), one thread each."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.support.models import gemma3_path
from tests.support.procs import RunningProcess
from tests.support.servers import backends_toml, gateway_process, llama_server

pytestmark = pytest.mark.slow
QUESTION = [{"role": "user", "content": "What is the capital of France? Answer in one word."}]


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningProcess]:
    gemma = gemma3_path(tmp_path_factory.mktemp("gemma"))
    with contextlib.ExitStack() as stack:
        smol = stack.enter_context(llama_server(alias="smol", n_ctx=2048, n_threads=1))
        # The base model ends at once under its own chat template; under ChatML it writes text.
        chatml = ("--chat_format", "chatml")
        gem = stack.enter_context(llama_server(gemma, alias="gemma", n_ctx=2048, n_threads=1, extra_args=chatml))
        toml = backends_toml([("smol", smol.url), ("gemma", gem.url)])
        yield stack.enter_context(gateway_process(toml, env={"SWARM_PER_CALL_TIMEOUT": "120"}))


@pytest.fixture(scope="module")
def http(gateway: RunningProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=gateway.url, timeout=300) as client:
        yield client


def _vote(http: httpx.Client, **body: Any) -> dict[str, Any]:
    resp = http.post("/swarm/vote", json={"messages": QUESTION, "max_tokens": 24, **body})
    assert resp.status_code == 200, resp.text
    data: dict[str, Any] = resp.json()
    return data


@pytest.mark.parametrize("model", ["smol", "gemma"])
def test_self_moa_samples_one_model_and_merges_its_drafts(http: httpx.Client, model: str) -> None:
    data = _vote(http, models=[model], strategy="self-moa", samples=3, temperature=0.8)
    swarm = data["swarm"]
    assert swarm["strategy"] == "self-moa"
    assert [(c["agent_id"], c["model"]) for c in swarm["candidates"]] == [
        ("sample-0", model), ("sample-1", model), ("sample-2", model)
    ]  # fmt: skip
    assert swarm["aggregator"]["model"] == model  # no judge named: the model merges its own drafts
    assert swarm["samples"] == {"taken": 3, "max": 3, "stopped_early": False}
    assert data["choices"][0]["message"]["content"].strip()
    cost = swarm["cost"]
    assert cost["calls"] == 4
    assert cost["tokens"] == data["usage"]["total_tokens"]
    assert cost["tokens_ratio"] > 1


def test_adaptive_majority_stops_when_the_answers_agree(http: httpx.Client) -> None:
    # At temperature 0 every sample is the same answer: three of five settle the vote.
    data = _vote(http, models=["smol"], strategy="majority", samples=5, temperature=0, max_parallel=4)
    swarm = data["swarm"]
    assert swarm["samples"] == {"taken": 3, "max": 5, "stopped_early": True}
    assert len(swarm["candidates"]) == 3
    assert swarm["votes"][0]["count"] == 3
    assert swarm["cost"]["calls"] == 3


def test_adaptive_majority_over_two_models_reports_what_it_took(http: httpx.Client) -> None:
    data = _vote(http, models=["smol", "gemma"], strategy="majority", samples=6, temperature=1.0, judge="smol")
    swarm = data["swarm"]
    taken = swarm["samples"]["taken"]
    assert 4 <= taken <= 6  # at least four alike of six are needed before it may stop
    assert swarm["samples"]["stopped_early"] == (taken < 6)
    assert [c["model"] for c in swarm["candidates"]] == ["smol", "gemma"] * (taken // 2) + ["smol"] * (taken % 2)
    assert sum(v["count"] for v in swarm["votes"]) == sum(1 for c in swarm["candidates"] if c["ok"])


def test_samples_out_of_range_is_an_openai_error(http: httpx.Client) -> None:
    resp = http.post("/swarm/vote", json={"models": ["smol"], "messages": QUESTION, "samples": 99})
    assert resp.status_code == 400
    error = resp.json()["error"]
    assert set(error) >= {"message", "type", "code"}
    assert "samples" in error["message"]
