"""Swarms end to end: the real gateway process over three real llama.cpp servers (SmolLM2 under three
aliases, separate processes so members truly run in parallel), through httpx and the openai client.
Each server gets one thread: three servers with two spinning threads each would fight over two cores."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest

from tests.support.procs import RunningProcess
from tests.support.servers import gateway_process, llama_server

pytestmark = pytest.mark.slow
ALIASES = ("smol-a", "smol-b", "smol-c")
QUESTION = [{"role": "user", "content": "What is the capital of France? Answer in one word."}]
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def gateway() -> Iterator[RunningProcess]:
    with contextlib.ExitStack() as stack:
        servers = [stack.enter_context(llama_server(alias=alias, n_ctx=2048, n_threads=1)) for alias in ALIASES]
        toml = "\n".join(
            f'[[backends]]\nname = "{alias}"\ntype = "openai"\nurl = "{server.url}"\n'
            for alias, server in zip(ALIASES, servers, strict=True)
        )
        with gateway_process(toml, env={"SWARM_PER_CALL_TIMEOUT": "120"}) as gw:
            yield gw


@pytest.fixture(scope="module")
def http(gateway: RunningProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=gateway.url, timeout=300) as client:
        yield client


def test_vote_best_of_n(http: httpx.Client) -> None:
    body = {"models": list(ALIASES), "judge": "smol-c", "messages": QUESTION, "max_tokens": 24, "temperature": 0}
    resp = http.post("/swarm/vote", json=body)
    assert resp.status_code == 200, resp.text
    data = resp.json()
    swarm = data["swarm"]
    assert swarm["winner"] in ALIASES
    assert data["model"] == f"swarm/{swarm['winner']}"
    assert resp.headers["x-swarm-winner"] == swarm["winner"]
    assert resp.headers["x-model-routed-to"] == f"swarm/{swarm['winner']}"
    assert [c["model"] for c in swarm["candidates"]] == list(ALIASES)
    assert all(c["ok"] and c["usage"]["completion_tokens"] > 0 for c in swarm["candidates"])
    assert sorted(row["agent_id"] for row in swarm["judge"]["order"]) == ["agent-0", "agent-1", "agent-2"]
    assert data["usage"]["total_tokens"] == swarm["usage"]["total"]["total_tokens"]
    assert data["choices"][0]["message"]["content"].strip()


def test_fanout_and_sentinel(http: httpx.Client) -> None:
    resp = http.post("/swarm/fanout", json={"models": "auto", "messages": QUESTION, "max_tokens": 16})
    assert resp.status_code == 200, resp.text
    data = resp.json()
    assert data["object"] == "swarm.fanout"
    assert sorted(r["model"] for r in data["results"]) == sorted(ALIASES)


def test_pipeline(http: httpx.Client) -> None:
    steps = [
        {"name": "answer", "model": "smol-a", "max_tokens": 24},
        {"name": "shout", "model": "smol-b", "user": "Repeat in capital letters: {{answer}}", "max_tokens": 24},
    ]
    resp = http.post("/swarm/pipeline", json={"steps": steps, "messages": QUESTION})
    assert resp.status_code == 200, resp.text
    history = resp.json()["swarm"]["history"]
    assert [(h["name"], h["model"]) for h in history] == [("answer", "smol-a"), ("shout", "smol-b")]


def test_debate(http: httpx.Client) -> None:
    body = {"models": ["smol-a", "smol-b"], "judge": "smol-c", "rounds": 2, "messages": QUESTION, "max_tokens": 32}
    resp = http.post("/swarm/debate", json=body)
    assert resp.status_code == 200, resp.text
    swarm = resp.json()["swarm"]
    assert swarm["strategy"] == "debate"
    assert swarm["rounds"] == 2
    assert [(t["round"], t["model"]) for t in swarm["transcript"]] == [
        (1, "smol-a"), (1, "smol-b"), (2, "smol-a"), (2, "smol-b")
    ]  # fmt: skip


def test_unknown_agents_fall_back_and_say_so(http: httpx.Client) -> None:
    body = {"models": ["nope-1", "nope-2"], "messages": QUESTION, "strategy": "longest", "max_tokens": 8}
    resp = http.post("/swarm/vote", json=body)
    assert resp.status_code == 200
    rows = resp.json()["swarm"]["candidates"]
    assert [r["ok"] for r in rows] == [True, True]
    assert [r["resolution"].split(" ->")[0] for r in rows] == [
        "fallback (requested 'nope-1', not present)",
        "fallback (requested 'nope-2', not present)",
    ]


def test_council_with_the_openai_client(gateway: RunningProcess) -> None:
    client = openai.OpenAI(base_url=gateway.url + "/v1", api_key="unused", timeout=300)
    swarm = {"models": list(ALIASES), "judge": "smol-c", "strategy": "best-of-n"}
    resp = client.chat.completions.create(
        model="swarmCouncil",
        messages=QUESTION,
        max_tokens=24,
        extra_body={"swarm": swarm},  # type: ignore[arg-type]
    )
    assert resp.model.removeprefix("swarm/") in ALIASES
    assert resp.choices[0].message.content
    assert resp.usage is not None
    assert resp.usage.total_tokens > 0


@pytest.mark.parametrize("strategy", ["first-success", "best-of-n", "synthesize"])
def test_council_streams(gateway: RunningProcess, strategy: str) -> None:
    client = openai.OpenAI(base_url=gateway.url + "/v1", api_key="unused", timeout=300)
    swarm = {"models": ["smol-a", "smol-b"], "judge": "smol-c", "strategy": strategy}
    stream = client.chat.completions.create(
        model="swarmCouncil",
        messages=QUESTION,
        max_tokens=24,
        stream=True,
        extra_body={"swarm": swarm},  # type: ignore[arg-type]
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    final = chunks[-1].model_extra or {}
    assert text.strip()
    assert final["swarm"]["strategy"] == strategy
    assert chunks[-1].model == f"swarm/{final['swarm']['winner']}"
    if strategy == "first-success":
        assert sum(1 for c in final["swarm"]["candidates"] if c["ok"]) == 1


@pytest.mark.timeout(1500)
def test_lattice_eval_end_to_end(gateway: RunningProcess, tmp_path: Path) -> None:
    out = tmp_path / "rows.jsonl"
    argv = [
        sys.executable, "-m", "local_lattice", "eval", str(ROOT / "datasets" / "eval_small.jsonl"),
        "--url", gateway.url, "--models", "smol-a,smol-b,smol-c", "--judge", "smol-c", "--max-tokens", "16",
        "--limit", "3", "--out", str(out),
    ]  # fmt: skip
    done = subprocess.run(argv, capture_output=True, text=True, timeout=1200, check=False)
    assert done.returncode == 0, done.stderr
    table, _, verdicts = done.stdout.partition("\n\n")
    lines = table.splitlines()
    assert lines[0].split()[:3] == ["method", "rows", "accuracy"]
    assert [v.split(":")[0] for v in verdicts.splitlines()] == ["vote", "debate", "majority", "synthesize"]
    assert [line.split()[0] for line in lines[1:]] == ["single", "vote", "debate", "majority", "synthesize"]
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 15
    assert {r["method"] for r in rows} == {"single", "vote", "debate", "majority", "synthesize"}
    assert sum(r["error"] is None for r in rows) >= 13
