"""A client that hangs up ends its request at once, on every route that calls a model or routing.

The real gateway process in front of a real upstream process that takes 4 s to answer and notes
the moment its client (the gateway) hangs up (``tests/support/hostile_upstream.py``). A raw-socket
client sends a request and closes after 0.5 s; the upstream must see every call of that request
closed right after (each agent and judge call of a swarm too), the request counted as 499, and
nothing left held (``/healthz`` admission, ``/metrics`` in flight). Streams are held to the same.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.support.hostile_upstream import Event, HostileUpstream, hostile_upstream
from tests.support.lifecycle import (
    errors_of_kind,
    in_flight,
    leave_after,
    requests_with_status,
    until,
    wait_idle,
)
from tests.support.models import smollm2_path
from tests.support.procs import RunningProcess
from tests.support.servers import backends_toml, gateway_process

pytestmark = pytest.mark.slow

MODELS = ["fast", "wait-4000", "drip-4000", "embed-wait-4000"]
CHAT = [{"role": "user", "content": "hi"}]
LEAVE_AFTER = 0.5
# The upstream would answer after 4 s; a hang-up seen within this of the client's is "at once".
PROMPTLY = 1.0


@pytest.fixture(scope="module")
def lab() -> Iterator[tuple[HostileUpstream, RunningProcess]]:
    with hostile_upstream(MODELS) as upstream, gateway_process(backends_toml([("hostile", upstream.url)])) as gateway:
        yield upstream, gateway


async def left_calls(
    upstream: HostileUpstream, gateway: RunningProcess, path: str, body: dict[str, Any], calls: int
) -> list[Event]:
    """Send, leave after ``LEAVE_AFTER``; the upstream saw ``calls`` calls, all hung up at once."""
    sent = time.monotonic()
    left = await leave_after(gateway.url, path, body, LEAVE_AFTER)
    assert left.received == b"" or path.startswith("/swarm") or body.get("stream"), left.received

    def ended() -> bool:
        seen = upstream.events(since=sent)
        return len(seen) >= calls and all(e.ended is not None for e in seen)

    await until(ended, seconds=6)
    events = upstream.events(since=sent)
    assert len(events) == calls, events
    assert all(e.hung_up and not e.answered for e in events), events
    assert max(e.ended or 0 for e in events) - left.closed_at < PROMPTLY, (events, left.closed_at)
    return events


async def leave_and_check(
    lab: tuple[HostileUpstream, RunningProcess], path: str, body: dict[str, Any], calls: int
) -> list[Event]:
    """``left_calls``, then: the request is counted as 499 and nothing is left held."""
    upstream, gateway = lab
    before = requests_with_status(gateway.url, path, 499)
    events = await left_calls(upstream, gateway, path, body, calls)
    wait_idle(gateway.url)
    assert requests_with_status(gateway.url, path, 499) == before + 1
    return events


ROUTES = [
    pytest.param("/v1/chat/completions", {"model": "wait-4000", "messages": CHAT}, id="chat"),
    pytest.param("/v1/completions", {"model": "wait-4000", "prompt": "hi"}, id="completions"),
    pytest.param("/v1/embeddings", {"model": "embed-wait-4000", "input": "hi"}, id="embeddings"),
    pytest.param("/v1/messages", {"model": "wait-4000", "max_tokens": 8, "messages": CHAT}, id="messages"),
    pytest.param("/v1/responses", {"model": "wait-4000", "input": "hi"}, id="responses"),
]


@pytest.mark.parametrize(("path", "body"), ROUTES)
async def test_a_non_streamed_call_ends_when_its_client_leaves(
    lab: tuple[HostileUpstream, RunningProcess], path: str, body: dict[str, Any]
) -> None:
    await leave_and_check(lab, path, body, calls=1)


STREAMS = [
    pytest.param("/v1/chat/completions", {"model": "drip-4000", "messages": CHAT}, id="chat"),
    pytest.param("/v1/completions", {"model": "drip-4000", "prompt": "hi"}, id="completions"),
    pytest.param("/v1/messages", {"model": "drip-4000", "max_tokens": 8, "messages": CHAT}, id="messages"),
    pytest.param("/v1/responses", {"model": "drip-4000", "input": "hi"}, id="responses"),
]


@pytest.mark.parametrize(("path", "body"), STREAMS)
async def test_a_stream_ends_when_its_client_leaves(
    lab: tuple[HostileUpstream, RunningProcess], path: str, body: dict[str, Any]
) -> None:
    await leave_and_check(lab, path, {**body, "stream": True}, calls=1)


SLOW_PAIR = ["wait-4000", "wait-4000"]
SWARMS = [
    pytest.param("/swarm/vote", {"models": SLOW_PAIR, "messages": CHAT, "judge": "fast"}, 2, id="vote"),
    pytest.param("/swarm/fanout", {"models": SLOW_PAIR, "messages": CHAT}, 2, id="fanout"),
    pytest.param(
        "/swarm/pipeline", {"steps": [{"name": "a", "model": "wait-4000"}], "messages": CHAT}, 1, id="pipeline"
    ),
    pytest.param(
        "/swarm/debate", {"models": SLOW_PAIR, "messages": CHAT, "rounds": 1, "judge": "fast"}, 2, id="debate"
    ),
    pytest.param(
        "/v1/chat/completions",
        {"model": "swarmCouncil", "messages": CHAT, "swarm": {"models": SLOW_PAIR, "judge": "fast"}},
        2,
        id="chat-meta-model",
    ),
    pytest.param(
        "/v1/chat/completions",
        {"model": "swarmCouncil", "messages": CHAT, "stream": True, "swarm": {"models": SLOW_PAIR, "judge": "fast"}},
        2,
        id="chat-meta-model-stream",
    ),
    pytest.param(
        "/swarm/vote", {"models": ["drip-4000", "drip-4000"], "messages": CHAT, "stream": True}, 2, id="vote-stream"
    ),
]


@pytest.mark.parametrize(("path", "body", "calls"), SWARMS)
async def test_every_agent_call_of_a_swarm_ends_when_its_client_leaves(
    lab: tuple[HostileUpstream, RunningProcess], path: str, body: dict[str, Any], calls: int
) -> None:
    events = await leave_and_check(lab, path, body, calls=calls)
    assert all(e.model.endswith("-4000") for e in events)


JUDGED = [
    pytest.param("/swarm/vote", {"models": ["fast", "fast"], "messages": CHAT, "judge": "wait-4000"}, id="vote"),
    pytest.param(
        "/swarm/debate",
        {"models": ["fast", "fast"], "messages": CHAT, "rounds": 1, "judge": "wait-4000"},
        id="debate",
    ),
]


@pytest.mark.parametrize(("path", "body"), JUDGED)
async def test_a_judge_call_ends_when_the_client_leaves(
    lab: tuple[HostileUpstream, RunningProcess], path: str, body: dict[str, Any]
) -> None:
    """The agents answer at once; the client leaves while the judge is still thinking."""
    upstream, gateway = lab
    sent = time.monotonic()
    left = await leave_after(gateway.url, path, body, LEAVE_AFTER)
    await until(lambda: any(e.model == "wait-4000" and e.ended for e in upstream.events(since=sent)), seconds=6)
    judge = [e for e in upstream.events(since=sent) if e.model == "wait-4000"]
    agents = [e for e in upstream.events(since=sent) if e.model == "fast"]
    # A vote's judge reads the candidates in two orders, side by side; a debate's judge sums up once.
    assert len(judge) == (2 if path == "/swarm/vote" else 1), judge
    assert all(e.hung_up for e in judge)
    assert all((e.ended or 0) - left.closed_at < PROMPTLY for e in judge)
    assert agents
    assert all(e.answered for e in agents)
    wait_idle(gateway.url)


async def test_a_dry_run_of_routing_ends_when_its_client_leaves() -> None:
    """``/v1/resolve`` runs no model, but it may wait on a slow model list: that call is closed too."""
    with (
        hostile_upstream(["fast"], list_delay_ms=4000) as upstream,
        gateway_process(backends_toml([("slow-list", upstream.url)]), extra_args=("--no-banner",)) as gateway,
    ):
        await left_calls(upstream, gateway, "/v1/resolve", {"model": "fast", "messages": CHAT}, calls=1)
        # No model call, so nothing in admission; the dry run is counted as a client that left.
        assert errors_of_kind(gateway.url, "/v1/resolve") == 1
        assert in_flight(gateway.url) == 0


@pytest.mark.parametrize("stream", [False, True], ids=["non-stream", "stream"])
async def test_an_in_process_generation_stops_when_its_client_leaves(stream: bool) -> None:
    """The real SmolLM2 in the gateway's own llama.cpp engine (one generation at a time): a long
    answer is abandoned after 1 s: the engine lets the model go at once, and the next request runs."""
    toml = f"""
[[backends]]
name = "local"
type = "llamacpp"
discover = false
model_files = {{ smol = "{smollm2_path()}" }}
"""
    with gateway_process(toml) as gateway:
        prompt = [{"role": "user", "content": "Count from 1 to 5000, separated by commas."}]
        long = {"model": "smol", "messages": prompt, "max_tokens": 4000, "temperature": 0, "stream": stream}
        await leave_after(gateway.url, "/v1/chat/completions", long, 1.0)

        def engine_idle() -> bool:  # the engine pins a model for as long as its worker generates
            health = httpx.get(gateway.url + "/healthz", timeout=10).json()
            return bool(health["backends"]["local"]["loaded"]) and health["backends"]["local"]["in_flight"] == {}

        await until(engine_idle, seconds=5)  # 4000 tokens at some 65 a second would take a minute
        short = {"model": "smol", "messages": CHAT, "max_tokens": 4}
        answer = await asyncio.to_thread(httpx.post, gateway.url + "/v1/chat/completions", json=short, timeout=60)
        assert answer.status_code == 200
        wait_idle(gateway.url)
        assert requests_with_status(gateway.url, "/v1/chat/completions", 499) == 1
