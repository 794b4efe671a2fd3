"""Concurrency caps shared by three real gateway processes through a real ``redis-server``: a
backend's ``max_concurrency`` holds at the upstream whatever replica a call reaches, a replica that
dies gives its slot back within seconds, and nothing stays held in the store after the calls end."""

from __future__ import annotations

import contextlib
import itertools
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import openai
import pytest
import redis

from tests.support.procs import RunningProcess
from tests.support.redis_server import RedisServer, redis_server
from tests.support.servers import backends_toml, gateway_process
from tests.support.upstream import Recorder, scripted_upstream

pytestmark = pytest.mark.slow

Fleet = tuple[RedisServer, Recorder, list[RunningProcess]]


@contextlib.contextmanager
def fleet(max_concurrency: int, replicas: int = 3) -> Iterator[Fleet]:
    with redis_server() as store, scripted_upstream() as (url, recorder), contextlib.ExitStack() as stack:
        extra = f'max_concurrency = {max_concurrency}\n\n[state]\nurl = "{store.url}"\nlease_seconds = 3\n'
        config = backends_toml([("up", url)], extra=extra)
        yield store, recorder, [stack.enter_context(gateway_process(config)) for _ in range(replicas)]


def held_in_store(store: RedisServer) -> dict[str, int]:
    """Every cap key in the store with members still in it (slots held, calls in line)."""
    client = redis.Redis.from_url(store.url)
    try:
        return {key.decode(): n for key in client.keys("lattice:cap:*") if (n := client.zcard(key))}
    finally:
        client.close()


def nothing_held(store: RedisServer, gateways: list[RunningProcess]) -> None:
    deadline = time.monotonic() + 5  # releases are sent in tasks of their own, after the answer
    while held_in_store(store) or any(health(g)["leases"] for g in gateways):
        assert time.monotonic() < deadline, (held_in_store(store), [health(g) for g in gateways])
        time.sleep(0.05)


def health(gateway: RunningProcess) -> dict[str, object]:
    state: dict[str, object] = httpx.get(gateway.url + "/healthz", timeout=30).json()["state"]
    return state


def call(gateway: RunningProcess, stream: bool, model: str = "slow-ok") -> str:
    client = openai.OpenAI(base_url=gateway.url + "/v1", api_key="none", max_retries=0, timeout=60)
    messages: list[dict[str, str]] = [{"role": "user", "content": "hi"}]
    if stream:
        chunks = client.chat.completions.create(model=model, messages=messages, stream=True)  # type: ignore[call-overload]
        return "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    answer = client.chat.completions.create(model=model, messages=messages)  # type: ignore[call-overload]
    return str(answer.choices[0].message.content)


def test_a_backend_cap_holds_at_the_upstream_across_three_replicas() -> None:
    with fleet(max_concurrency=2) as (store, recorder, gateways):
        targets = list(itertools.islice(itertools.cycle(gateways), 12))
        with ThreadPoolExecutor(12) as pool:
            answers = list(pool.map(call, targets, [i % 2 == 0 for i in range(12)]))
        assert answers == ["ok"] * 12
        assert recorder.most_at_once == 2  # never more than the cap, and the cap was reached
        nothing_held(store, gateways)
        assert all(health(g)["replicas"] == 3 for g in gateways)


def test_a_killed_replica_gives_its_slot_back_within_seconds() -> None:
    with fleet(max_concurrency=1, replicas=2) as (store, recorder, (doomed, survivor)):
        with ThreadPoolExecutor(1) as pool:
            holding = pool.submit(call, doomed, False, "hold")
            assert recorder.held.wait(30)
            # While the slot is held elsewhere, a call that may wait 1 s is turned away with a 429.
            waited = httpx.post(
                survivor.url + "/v1/chat/completions",
                json={"model": "ok-model", "messages": [{"role": "user", "content": "hi"}]},
                headers={"X-Lattice-Max-Queue-Wait-Ms": "1000"},
                timeout=30,
            )
            assert waited.status_code == 429, waited.text
            assert waited.json()["error"]["code"] == "queue_timeout"
            doomed.proc.kill()
            killed = time.monotonic()
            assert call(survivor, False, "ok-model") == "ok"
            assert time.monotonic() - killed < 10
            with pytest.raises(openai.APIConnectionError):
                holding.result()
        nothing_held(store, [survivor])


def test_losing_the_store_divides_the_cap_and_fails_nothing() -> None:
    with fleet(max_concurrency=2) as (store, recorder, gateways):
        deadline = time.monotonic() + 10  # every replica's heartbeat has counted all three
        while not all(health(g)["replicas"] == 3 for g in gateways):
            assert time.monotonic() < deadline
            time.sleep(0.2)
        store.kill()
        targets = list(itertools.islice(itertools.cycle(gateways), 9))
        with ThreadPoolExecutor(9) as pool:
            answers = list(pool.map(call, targets, [False] * 9))
        assert answers == ["ok"] * 9
        assert recorder.most_at_once <= 3  # each replica takes max(1, 2 // 3) = 1 slot on its own
        assert all(health(g)["degraded"] is True and health(g)["leases"] == 0 for g in gateways)
        page = httpx.get(gateways[0].url + "/dashboard/api/snapshot", timeout=30).json()
        assert page["state"]["degraded"] is True  # the dashboard says so too


def test_clients_that_leave_hold_nothing_in_the_store() -> None:
    with fleet(max_concurrency=1, replicas=2) as (store, recorder, (one, two)):
        body = {"model": "slow-stream", "messages": [{"role": "user", "content": "hi"}], "stream": True}
        with httpx.stream("POST", one.url + "/v1/chat/completions", json=body, timeout=30) as streaming:
            lines = streaming.iter_lines()  # kept: a dropped iterator closes the response
            assert next(lines).startswith("data:")  # holding the only slot, mid-stream
            # A client waiting in line on the other replica gives up after half a second.
            with pytest.raises(httpx.ReadTimeout):
                httpx.post(two.url + "/v1/chat/completions", json={**body, "stream": False}, timeout=0.5)
            assert held_in_store(store)  # the stream's slot, and maybe the leaver's place in line
        nothing_held(store, [one, two])  # the stream's client left too: its slot is back
        assert recorder.stream_closed.wait(10)
        assert call(two, False, "ok-model") == "ok"
