"""The real gateway process against hostile clients before any request exists: a 256 MiB header
block, heads that never complete, 500 connections dribbling their heads, 20,000 idle sockets, and
more connections than the cap while every one is busy. Well-behaved clients are served all the
while, and afterwards nothing is held."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from urllib.parse import urlsplit

import httpx
import orjson
import pytest

from tests.support.floods import shares
from tests.support.hostile import assert_nothing_held, rss_kib
from tests.support.procs import PYTHON, RunningProcess
from tests.support.servers import gateway_process
from tests.support.upstream import scripted_upstream

pytestmark = pytest.mark.slow

HEAD_TIMEOUT = 2.0
MAX_CONNECTIONS = 1000
MESSAGES = [{"role": "user", "content": "hi"}]
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def config(url: str, **server: object) -> str:
    lines = ["[server]", *(f"{key} = {json.dumps(value)}" for key, value in server.items())]
    lines += ["[observability]", "metrics_public = true", "[[backends]]", 'name = "s"', f'url = "{url}"']
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def upstream_url() -> Iterator[str]:
    with scripted_upstream() as (url, _):
        yield url


@pytest.fixture(scope="module")
def gateway(upstream_url: str) -> Iterator[RunningProcess]:
    toml = config(upstream_url, head_timeout=HEAD_TIMEOUT, max_connections=MAX_CONNECTIONS)
    with gateway_process(toml) as gw:
        yield gw
        assert "Traceback" not in gw.log()


def port_of(gateway: RunningProcess) -> int:
    port = urlsplit(gateway.url).port
    assert port is not None
    return port


def chat(gateway: RunningProcess, timeout: float = 30.0) -> int:
    body = {"model": "ok-model", "messages": MESSAGES, "max_tokens": 4}
    return httpx.post(gateway.url + "/v1/chat/completions", json=body, timeout=timeout).status_code


def read_answer(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    data = b""
    while b"\r\n\r\n" not in data or len(data.partition(b"\r\n\r\n")[2]) < _length(data):
        piece = sock.recv(65536)
        if not piece:
            break
        data += piece
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.lower().split(": ", 1) for line in lines[1:] if ": " in line)
    return int(lines[0].split(" ")[1]), headers, body


def _length(data: bytes) -> int:
    for line in data.partition(b"\r\n\r\n")[0].split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            return int(line.split(b":")[1])
    return 1 << 30


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def flood(mode: str, port: int, count: int, seconds: float, *extra: str) -> subprocess.Popen[str]:
    argv = [PYTHON, "-m", "tests.support.floods", mode, "--port", str(port), "--count", str(count)]
    return subprocess.Popen(
        [*argv, "--seconds", str(seconds), *extra], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def report(proc: subprocess.Popen[str], timeout: float) -> dict[str, float]:
    """The flood's report (its error output, if it failed instead)."""
    out, err = proc.communicate(timeout=timeout)
    if proc.returncode != 0:
        return {"failed_with": err[-2000:]}  # type: ignore[dict-item]
    result: dict[str, float] = json.loads(out.strip().splitlines()[-1])
    return result


# -- the head's size -------------------------------------------------------------------------------


def test_a_256_mib_header_block_gets_431_early_and_memory_stays_flat(gateway: RunningProcess) -> None:
    _, peak_before = rss_kib(gateway.proc.pid)
    block = b"a" * (1 << 20)
    with socket.create_connection(("127.0.0.1", port_of(gateway)), timeout=30) as sock:
        sock.sendall(b"GET /v1/models HTTP/1.1\r\nHost: t\r\nX-Block: ")
        sent = 0
        try:
            for _ in range(256):
                sock.sendall(block)
                sent += len(block)
        except OSError:
            pass  # the gateway stopped reading: it answered long before the end
        status, headers, body = read_answer(sock)
    _, peak_after = rss_kib(gateway.proc.pid)
    assert status == 431
    assert orjson.loads(body)["error"]["code"] == "request_headers_too_large"
    assert headers["x-content-type-options"] == "nosniff"
    assert peak_after - peak_before < 16 * 1024, (peak_before, peak_after, sent)  # KiB
    assert chat(gateway) == 200
    assert_nothing_held(gateway)


# -- the head's time --------------------------------------------------------------------------------


def closed_after(sock: socket.socket) -> float:
    started = time.monotonic()
    sock.settimeout(HEAD_TIMEOUT + 5)
    assert sock.recv(100) == b""  # closed without an answer
    return time.monotonic() - started


@pytest.mark.parametrize("kept_alive", [False, True], ids=["new-connection", "kept-alive"])
def test_a_head_not_complete_in_time_is_closed(gateway: RunningProcess, kept_alive: bool) -> None:
    with socket.create_connection(("127.0.0.1", port_of(gateway)), timeout=10) as sock:
        if kept_alive:
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n")
            assert read_answer(sock)[0] == 200
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: t\r\nX-Slow: ")
        took = closed_after(sock)
    assert HEAD_TIMEOUT - 0.3 < took < HEAD_TIMEOUT + 1.5


def test_a_connection_that_sends_nothing_is_closed_after_the_head_timeout(gateway: RunningProcess) -> None:
    with socket.create_connection(("127.0.0.1", port_of(gateway)), timeout=10) as sock:
        took = closed_after(sock)
    assert HEAD_TIMEOUT - 0.3 < took < HEAD_TIMEOUT + 1.5


def serve_meanwhile(gateway: RunningProcess, *procs: subprocess.Popen[str]) -> list[int]:
    """Well-behaved requests, one new connection each, for as long as any flood runs."""
    statuses = []
    while any(proc.poll() is None for proc in procs) and len(statuses) < 200:
        statuses.append(chat(gateway))
        time.sleep(0.1)
    return statuses


def test_500_dribbling_connections_are_closed_while_others_are_served(gateway: RunningProcess) -> None:
    proc = flood("dribble", port_of(gateway), 500, HEAD_TIMEOUT + 6, "--interval", "0.2")
    time.sleep(0.5)
    statuses = serve_meanwhile(gateway, proc)
    result = report(proc, 60)
    assert "failed_with" not in result, result
    assert result["connected"] == 500
    assert result["closed_by_server"] == 500
    assert result["closed_after_max"] < HEAD_TIMEOUT + 2
    assert len(statuses) >= 5  # served while the dribblers held their connections
    assert set(statuses) == {200}
    assert_nothing_held(gateway)


def test_20000_idle_sockets_leave_room_for_well_behaved_clients(gateway: RunningProcess) -> None:
    port = port_of(gateway)
    # From other loopback addresses: each has its own ephemeral ports (one holds ~28,000 in all).
    counts = shares(20_000)
    floods = [flood("idle", port, count, 20, "--source", f"127.0.0.{n + 2}") for n, count in enumerate(counts)]
    fds: list[int] = []
    sampling = threading.Event()

    def sample() -> None:
        while not sampling.wait(0.2):
            fds.append(open_fds(gateway.proc.pid))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        statuses = serve_meanwhile(gateway, *floods)
    finally:
        sampling.set()
        sampler.join(5)
    results = [report(proc, 60) for proc in floods]  # every flood's pipes read and closed before any check
    assert all("failed_with" not in r for r in results), results
    connected = sum(r["connected"] for r in results)
    assert connected >= 19_900, results
    assert sum(r["closed_by_server"] for r in results) >= connected - MAX_CONNECTIONS, results
    assert max(fds) < MAX_CONNECTIONS + 300, max(fds)  # the cap, the upstream pool and the process's own files
    assert len(statuses) >= 5  # served while the idle sockets were held (a loaded machine serves fewer)
    assert set(statuses) == {200}
    assert_nothing_held(gateway)


# -- the connection cap with every connection busy ---------------------------------------------------------


def test_past_the_cap_with_every_connection_busy_a_new_connection_gets_503(upstream_url: str) -> None:
    with gateway_process(config(upstream_url, max_connections=3)) as gw:
        body = orjson.dumps({"model": "slow-stream", "messages": MESSAGES, "stream": True})
        request = b"POST /v1/chat/completions HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
        request += b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
        busy = [socket.create_connection(("127.0.0.1", port_of(gw)), timeout=10) for _ in range(3)]
        try:
            for sock in busy:
                sock.sendall(request)
                assert sock.recv(65536).startswith(b"HTTP/1.1 200")  # streaming: the connection is busy
            with socket.create_connection(("127.0.0.1", port_of(gw)), timeout=10) as extra:
                extra.sendall(b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n")
                status, headers, answer = read_answer(extra)
            assert status == 503
            assert orjson.loads(answer)["error"]["code"] == "too_many_connections"
            assert headers["retry-after"] == "1"
        finally:
            for sock in busy:
                sock.close()
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and httpx.get(gw.url + "/healthz").json()["admission"]["inflight"]:
            time.sleep(0.05)
        assert chat(gw) == 200
        assert_nothing_held(gw)
