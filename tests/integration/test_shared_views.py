"""Cool-downs and dashboard preferences shared by real gateway processes through a real
``redis-server``: a backend one replica puts on cool-down is skipped by the others, and preferences
set on one replica's dashboard are those of every replica, one started later too."""

from __future__ import annotations

import time

import httpx
import pytest

from tests.support.redis_server import redis_server
from tests.support.servers import backends_toml, gateway_process
from tests.support.upstream import scripted_upstream

pytestmark = pytest.mark.slow


def chat(url: str, model: str, session: str = "s") -> httpx.Response:
    body = {"model": model, "messages": [{"role": "user", "content": f"hi {session}"}]}
    return httpx.post(url + "/v1/chat/completions", json=body, headers={"X-Session-Id": session}, timeout=30)


def test_a_backend_cooling_on_one_replica_is_skipped_by_the_others() -> None:
    with (
        redis_server() as store,
        scripted_upstream(["boom-500", "ok-model"]) as (first_url, first),
        scripted_upstream(["ok-model"]) as (second_url, _),
    ):
        config = backends_toml([("a", first_url), ("b", second_url)], extra=f'[state]\nurl = "{store.url}"\n')
        with gateway_process(config) as failing, gateway_process(config) as other:
            time.sleep(0.5)  # both subscribed
            assert [chat(failing.url, "boom-500").status_code for _ in range(3)] == [502] * 3
            time.sleep(0.5)
            asked_before = len(first.bodies)
            routed = [chat(other.url, "ok-model", f"session-{i}").headers["x-model-routed-to"] for i in range(8)]
            assert routed == ["b/ok-model"] * 8  # a is cooling down on every replica, not just the first
            assert len(first.bodies) == asked_before


def test_preferences_set_on_one_replica_are_everyones() -> None:
    with redis_server() as store, scripted_upstream() as (url, _):
        config = backends_toml([("up", url)], extra=f'[state]\nurl = "{store.url}"\n')
        with gateway_process(config) as one, gateway_process(config) as two:
            time.sleep(0.5)
            prefs = {"default_model": "ok-model", "swarm_presets": {"pair": {"models": ["ok-model", "echo"]}}}
            set_here = httpx.post(one.url + "/dashboard/api/preferences", json=prefs, timeout=30)
            assert set_here.status_code == 200, set_here.text
            deadline = time.monotonic() + 5
            while httpx.get(two.url + "/dashboard/api/preferences", timeout=30).json()["default_model"] != "ok-model":
                assert time.monotonic() < deadline
                time.sleep(0.1)
            with gateway_process(config) as later:
                deadline = time.monotonic() + 5
                while True:
                    seen = httpx.get(later.url + "/dashboard/api/preferences", timeout=30).json()
                    if seen["default_model"] == "ok-model":
                        break
                    assert time.monotonic() < deadline, seen
                    time.sleep(0.1)
                assert seen["swarm_presets"]["pair"]["models"] == ["ok-model", "echo"]
