"""What clients get when upstreams fail: the real gateway process in front of a scripted upstream
(5xx, garbage, 4xx, 429, slow and dying streams) and in front of a closed port."""

from __future__ import annotations

import asyncio
import subprocess
import time
from collections.abc import Iterator

import httpx
import openai
import pytest

from local_lattice.backends.openai_compat import OpenAIBackend
from local_lattice.config import BackendConfig
from local_lattice.errors import BackendUnavailable, UpstreamError
from local_lattice.types import BackendRequest
from tests.support.procs import PYTHON, RunningProcess, free_port
from tests.support.servers import gateway_process
from tests.support.upstream import Recorder, scripted_upstream

pytestmark = pytest.mark.slow

MESSAGES = [{"role": "user", "content": "hi"}]


@pytest.fixture(scope="module")
def upstream() -> Iterator[tuple[str, Recorder]]:
    with scripted_upstream() as pair:
        yield pair


@pytest.fixture(scope="module")
def gateway(upstream: tuple[str, Recorder]) -> Iterator[RunningProcess]:
    url, _ = upstream
    dead = f"http://127.0.0.1:{free_port()}/v1"
    toml = f"""
[[backends]]
name = "scripted"
url = "{url}"
api_key = "upstream-secret"

[[backends]]
name = "dead"
url = "{dead}"
"""
    with gateway_process(toml) as gw:
        yield gw


def post(gateway: RunningProcess, model: str, **extra: object) -> httpx.Response:
    return httpx.post(
        gateway.url + "/v1/chat/completions",
        json={"model": model, "messages": MESSAGES, **extra},
        headers={"Authorization": "Bearer client-secret", "Cookie": "session=abc", "X-API-Key": "client-key"},
        timeout=30,
    )


def test_upstream_5xx_is_502(gateway: RunningProcess) -> None:
    response = post(gateway, "boom-500")
    assert response.status_code == 502
    assert "kaboom" in response.json()["error"]["message"]


def test_upstream_garbage_is_502(gateway: RunningProcess) -> None:
    response = post(gateway, "garbage")
    assert response.status_code == 502
    assert response.json()["error"]["type"] == "upstream_error"


def test_upstream_4xx_keeps_status_and_message(gateway: RunningProcess) -> None:
    response = post(gateway, "bad-request")
    assert response.status_code == 400
    assert "max_tokens is too large" in response.json()["error"]["message"]


def test_upstream_429_is_429_with_retry_after(gateway: RunningProcess) -> None:
    response = post(gateway, "rate-limited")
    assert response.status_code == 429
    assert int(response.headers["retry-after"]) >= 1


def test_client_credentials_never_reach_the_upstream(gateway: RunningProcess, upstream: tuple[str, Recorder]) -> None:
    _, rec = upstream
    assert post(gateway, "ok-model").status_code == 200
    seen = {k.lower(): v for k, v in rec.headers[-1].items()}
    assert seen["authorization"] == "Bearer upstream-secret"
    assert "x-api-key" not in seen
    assert "cookie" not in seen


async def test_unreachable_upstream_is_503_with_retry_after() -> None:
    dead = f"http://127.0.0.1:{free_port()}/v1"
    backend = OpenAIBackend(BackendConfig(name="dead", url=dead))
    try:
        with pytest.raises(BackendUnavailable) as info:
            await backend.complete(BackendRequest("chat", "m", {"messages": MESSAGES}))
    finally:
        await backend.aclose()
    assert info.value.status == 503
    assert int(info.value.headers["Retry-After"]) >= 1


def test_gateway_with_only_unreachable_upstreams_is_unhealthy() -> None:
    toml = f"""
[[backends]]
name = "dead"
url = "http://127.0.0.1:{free_port()}/v1"
"""
    with gateway_process(toml) as gw:
        health = httpx.get(gw.url + "/healthz")
        assert health.status_code == 503
        assert health.json()["backends"]["dead"]["ok"] is False


def test_failure_after_first_byte_ends_with_error_event_and_done(gateway: RunningProcess) -> None:
    with httpx.stream(
        "POST",
        gateway.url + "/v1/chat/completions",
        json={"model": "die-mid-stream", "messages": MESSAGES, "stream": True},
    ) as response:
        assert response.status_code == 200
        events = [line for line in response.iter_lines() if line.startswith("data: ")]
    assert '"t0 "' in events[0]
    assert '"error"' in events[-2]
    assert events[-1] == "data: [DONE]"


def test_client_disconnect_closes_the_upstream_at_once(gateway: RunningProcess, upstream: tuple[str, Recorder]) -> None:
    _, rec = upstream
    rec.stream_started.clear()
    rec.stream_closed.clear()
    before = rec.disconnects
    with httpx.stream(
        "POST",
        gateway.url + "/v1/chat/completions",
        json={"model": "slow-stream", "messages": MESSAGES, "stream": True},
    ) as response:
        lines = response.iter_lines()
        assert next(lines).startswith("data: ")
    closed_at = time.monotonic()
    assert rec.stream_closed.wait(5)
    assert time.monotonic() - closed_at < 1.0  # the upstream sends a chunk every 100 ms for 10 s
    assert rec.disconnects == before + 1


def test_openai_client_sees_typed_errors(gateway: RunningProcess) -> None:
    client = openai.OpenAI(base_url=gateway.url + "/v1", api_key="x", max_retries=0)
    with pytest.raises(openai.InternalServerError):
        client.chat.completions.create(model="boom-500", messages=MESSAGES)  # type: ignore[arg-type]
    with pytest.raises(openai.RateLimitError):
        client.chat.completions.create(model="rate-limited", messages=MESSAGES)  # type: ignore[arg-type]


def test_public_bind_without_key_exits_2() -> None:
    result = subprocess.run(
        [PYTHON, "-m", "local_lattice", "serve", "--host", "0.0.0.0", "--port", str(free_port())],
        capture_output=True,
        text=True,
        timeout=30,
        env={"PATH": "/usr/bin:/bin", "MIDDLE_LAYER_API_KEY": ""},
    )
    assert result.returncode == 2
    assert "MIDDLE_LAYER_API_KEY" in result.stderr


def test_an_upstream_past_its_time_limit_is_502_and_the_gateway_goes_on(upstream: tuple[str, Recorder]) -> None:
    url, _ = upstream
    toml = f'[[backends]]\nname = "scripted"\nurl = "{url}"\ntimeout = 1\n'
    with gateway_process(toml) as gw:
        started = time.monotonic()
        response = post(gw, "hang")
        took = time.monotonic() - started
        assert response.status_code == 502
        assert response.json()["error"]["code"] == "upstream_timeout"
        assert 0.9 <= took < 4.0  # the limit, checked once a second
        assert post(gw, "ok-model").status_code == 200


async def test_the_time_limit_is_not_confused_with_a_client_going_away(upstream: tuple[str, Recorder]) -> None:
    url, _ = upstream
    backend = OpenAIBackend(BackendConfig(name="scripted", url=url, timeout=0.5))
    try:
        request = BackendRequest("chat", "hang", {"model": "hang", "messages": MESSAGES})
        with pytest.raises(UpstreamError) as timed_out:
            await backend.complete(request)
        assert timed_out.value.code == "upstream_timeout"
        call = asyncio.ensure_future(backend.complete(request))
        await asyncio.sleep(0.2)
        call.cancel()  # what a client disconnect does to its request's task
        with pytest.raises(asyncio.CancelledError):
            await call
    finally:
        await backend.aclose()


def test_cookies_an_upstream_sets_never_travel_with_later_calls(upstream: tuple[str, Recorder]) -> None:
    url, recorder = upstream
    # By name, not by address: cookie jars keep cookies from names and refuse them from bare IPs.
    toml = f'[[backends]]\nname = "scripted"\nurl = "{url.replace("127.0.0.1", "localhost")}"\n'
    with gateway_process(toml) as gw:
        for _ in range(2):
            assert post(gw, "ok-model").status_code == 200
    seen = {k.lower(): v for k, v in recorder.headers[-1].items()}
    assert "cookie" not in seen  # the first answer set one; the gateway keeps no cookie jar
