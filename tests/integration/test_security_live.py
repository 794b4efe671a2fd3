"""Hostile HTTP against the real gateway process over raw sockets: oversized headers, invalid
UTF-8, truncated bodies. Every answer is a 4xx (an envelope wherever the request reaches the app),
never a 5xx, a traceback or a hang; the process keeps serving."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from urllib.parse import urlsplit

import httpx
import orjson
import pytest

from tests.support.procs import RunningProcess
from tests.support.servers import gateway_process
from tests.support.upstream import scripted_upstream

pytestmark = pytest.mark.slow

KEY = "live-key-0123456789"


@pytest.fixture(scope="module")
def gateway() -> Iterator[RunningProcess]:
    with scripted_upstream() as (url, _):
        toml = f'[server]\napi_keys = ["{KEY}"]\n[[backends]]\nname = "s"\nurl = "{url}"\n'
        with gateway_process(toml) as gw:
            yield gw


def parse_head(head: bytes) -> dict[str, str]:
    fields = (line.decode("latin-1").split(": ", 1) for line in head.split(b"\r\n")[1:] if b": " in line)
    return {name.lower(): value for name, value in fields}


def raw(gateway: RunningProcess, request: bytes, timeout: float = 10.0) -> tuple[int, dict[str, str], bytes]:
    """Send bytes, read until the server closes or the body is complete; (status, headers, body)."""
    parts = urlsplit(gateway.url)
    with socket.create_connection((parts.hostname, parts.port), timeout=timeout) as sock:
        sock.sendall(request)
        data = b""
        while True:
            try:
                chunk = sock.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            data += chunk
            head, sep, body = data.partition(b"\r\n\r\n")
            if sep:
                length = parse_head(head).get("content-length")
                if length is not None and len(body) >= int(length):
                    break
    head, _, body = data.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    return status, parse_head(head), body


def request(path: str, headers: list[tuple[str, str]], body: bytes = b"", method: str = "POST") -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: test", "Connection: close", *(f"{k}: {v}" for k, v in headers)]
    if body or method == "POST":
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


@pytest.mark.parametrize(
    "headers",
    [
        [("X-Big", "c" * 70_000)],
        [("X-Big", "a" * 200_000)],
        [(f"X-H{i}", "b" * 60) for i in range(3000)],
    ],
    ids=["one-70k-header", "one-200k-header", "3000-headers"],
)
def test_oversized_heads_get_431_in_the_envelope(gateway: RunningProcess, headers: list[tuple[str, str]]) -> None:
    status, answer_headers, body = raw(gateway, request("/v1/models", [("X-API-Key", KEY), *headers], method="GET"))
    assert status == 431
    assert orjson.loads(body)["error"]["code"] == "request_headers_too_large"
    assert answer_headers["x-frame-options"] == "DENY"
    assert answer_headers["connection"] == "close"
    assert httpx.get(gateway.url + "/healthz").status_code == 200


def test_large_headers_below_the_head_cap_pass(gateway: RunningProcess) -> None:
    status, _, _ = raw(gateway, request("/v1/models", [("X-API-Key", KEY), ("X-Big", "c" * 40_000)], method="GET"))
    assert status == 200


@pytest.mark.parametrize(
    "body",
    [
        b'{"model":"ok-model","messages":[{"role":"user","content":"\xff\xfe\xfd"}]}',
        b'{"model":"ok-model","messages":[{"role":"user","content":"hi"}],"top_p":NaN}',
        b'{"model":"ok-model","messages":' + b"[" * 100_000 + b"]" * 100_000 + b"}",
        b'{"model":"ok-model","messages":[{"role":"user","content":"hi"}],"n":1e400}',
    ],
    ids=["invalid-utf8", "nan", "deep-nesting", "huge-number"],
)
def test_hostile_bodies_get_a_400_envelope(gateway: RunningProcess, body: bytes) -> None:
    status, headers, answer = raw(
        gateway, request("/v1/chat/completions", [("X-API-Key", KEY), ("Content-Type", "application/json")], body)
    )
    assert status == 400
    assert orjson.loads(answer)["error"]["type"] == "invalid_request_error"
    assert headers["x-content-type-options"] == "nosniff"


def test_a_truncated_body_does_not_wedge_the_server(gateway: RunningProcess) -> None:
    parts = urlsplit(gateway.url)
    for _ in range(5):
        with socket.create_connection((parts.hostname, parts.port), timeout=5) as sock:
            sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: t\r\nX-API-Key: " + KEY.encode())
            sock.sendall(b'\r\nContent-Length: 1000\r\n\r\n{"model":')
    response = httpx.post(
        gateway.url + "/v1/chat/completions",
        json={"model": "ok-model", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4},
        headers={"X-API-Key": KEY},
        timeout=10,
    )
    assert response.status_code == 200
    assert "Traceback" not in gateway.log()
