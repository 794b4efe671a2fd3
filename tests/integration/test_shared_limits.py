"""Rate limits shared by three real gateway processes through a real ``redis-server``: the key's
budget holds across the replicas, and losing the store never fails a request."""

from __future__ import annotations

import contextlib
import itertools
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.support.procs import RunningProcess
from tests.support.redis_server import RedisServer, redis_server
from tests.support.servers import backends_toml, gateway_process
from tests.support.upstream import scripted_upstream

pytestmark = pytest.mark.slow

KEY = "sk-shared-limits"
AUTH = {"Authorization": f"Bearer {KEY}"}
CHAT = {"model": "ok-model", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}


@pytest.fixture
def fleet() -> Iterator[tuple[RedisServer, list[RunningProcess]]]:
    with redis_server() as store, scripted_upstream() as (url, _), contextlib.ExitStack() as stack:
        extra = f'\n[limits.per_key]\nrequests_per_minute = 30\n\n[state]\nurl = "{store.url}"\n'
        config = backends_toml([("up", url)], api_key=KEY, extra=extra)
        gateways = [stack.enter_context(gateway_process(config)) for _ in range(3)]
        yield store, gateways


def ask(clients: Iterator[httpx.Client], n: int) -> list[httpx.Response]:
    return [next(clients).post("/v1/chat/completions", json=CHAT, headers=AUTH) for _ in range(n)]


def round_robin(gateways: list[RunningProcess], stack: contextlib.ExitStack) -> Iterator[httpx.Client]:
    return itertools.cycle([stack.enter_context(httpx.Client(base_url=g.url, timeout=30)) for g in gateways])


def health(gateway: RunningProcess) -> httpx.Response:
    return httpx.get(gateway.url + "/healthz", headers=AUTH, timeout=30)


def test_one_key_limit_holds_across_three_replicas(fleet: tuple[RedisServer, list[RunningProcess]]) -> None:
    _, gateways = fleet
    with contextlib.ExitStack() as stack:
        answers = ask(round_robin(gateways, stack), 90)
    statuses = [a.status_code for a in answers]
    assert set(statuses) <= {200, 429}, statuses
    assert 28 <= statuses.count(200) <= 33, statuses  # 30/min, not 30 on each of three replicas
    refused = next(a for a in answers if a.status_code == 429)
    assert refused.json()["error"]["code"] == "key_requests_per_minute"
    assert 1 <= int(refused.headers["retry-after"]) <= 3  # one request's worth refills in 2 s
    settled = {"shared": True, "degraded": False, "replicas": 3, "leases": 0}
    assert all(health(g).json()["state"] == settled for g in gateways)


def test_losing_the_store_turns_limits_local_and_fails_nothing(
    fleet: tuple[RedisServer, list[RunningProcess]],
) -> None:
    store, gateways = fleet
    with contextlib.ExitStack() as stack:
        clients = round_robin(gateways, stack)
        assert {a.status_code for a in ask(clients, 3)} == {200}
        deadline = time.monotonic() + 10  # every replica's heartbeat has counted all three
        while not all(health(g).json()["state"]["replicas"] == 3 for g in gateways):
            assert time.monotonic() < deadline
            time.sleep(0.2)
        store.kill()
        for gateway in gateways:  # a scrape passes the limiter too: the first call to find the store gone
            metrics = httpx.get(gateway.url + "/metrics", headers=AUTH, timeout=30)
            assert "lattice_state_degraded 1.0" in metrics.text, metrics.text
        statuses = [a.status_code for a in ask(clients, 30)]
        assert set(statuses) <= {200, 429}, statuses
        # Each replica counts 30/3 = 10 a minute on its own now, one of them taken by the scrape.
        assert 24 <= statuses.count(200) <= 28, statuses
        for gateway in gateways:
            seen = health(gateway)
            assert seen.status_code == 200
            assert seen.json()["state"]["degraded"] is True
            assert gateway.log().count("shared state lost") == 1  # logged once, not per request

        store.start()  # back, empty: the replicas rejoin without a restart
        time.sleep(1.1)  # past the retry pause
        assert {a.status_code for a in ask(clients, 3)} == {200}
        assert all(health(g).json()["state"]["degraded"] is False for g in gateways)
        assert all("shared state back" in g.log() for g in gateways)
