"""Client-side tools for the request-lifecycle tests: a raw HTTP/1.1 client that leaves when told,
readers of a live gateway's ``/healthz`` admission and ``/metrics`` in-flight gauge, and the check
every fault test ends with (nothing left held)."""

from __future__ import annotations

import asyncio
import re
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx
import orjson

IN_FLIGHT = re.compile(r"^lattice_requests_in_flight\{[^}]*\} (\S+)$", re.MULTILINE)


def _request(url: str, path: str, body: object, headers: dict[str, str] | None = None) -> bytes:
    parts = urlsplit(url)
    data = orjson.dumps(body)
    lines = [f"POST {path} HTTP/1.1", f"Host: {parts.netloc}", "Content-Type: application/json"]
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    lines.append(f"Content-Length: {len(data)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + data


@dataclass
class Left:
    """What a client that left saw: the bytes it got and when it closed (``time.monotonic()``)."""

    received: bytes
    closed_at: float


async def leave_after(url: str, path: str, body: object, seconds: float, headers: dict[str, str] | None = None) -> Left:
    """Send one request on a raw socket, read whatever comes for ``seconds``, then close."""
    parts = urlsplit(url)
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
    writer.write(_request(url, path, body, headers))
    await writer.drain()
    received = b""
    ends = time.monotonic() + seconds
    while (left := ends - time.monotonic()) > 0:
        try:
            async with asyncio.timeout(left):
                piece = await reader.read(65536)
        except TimeoutError:
            break
        if not piece:
            break
        received += piece
    writer.transport.abort()
    return Left(received, time.monotonic())


async def send_and_read(
    url: str, path: str, body: object, headers: dict[str, str] | None = None, seconds: float = 30.0
) -> bytes:
    """Send one request asking the server to close after it, and read until it does."""
    parts = urlsplit(url)
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
    writer.write(_request(url, path, body, {"Connection": "close", **(headers or {})}))
    await writer.drain()
    try:
        async with asyncio.timeout(seconds):
            return await reader.read(-1)
    finally:
        writer.transport.abort()


def admission(url: str, headers: dict[str, str] | None = None) -> dict[str, int]:
    data = httpx.get(url + "/healthz", headers=headers, timeout=10).json()["admission"]
    return {"waiting": data["waiting"], "inflight": data["inflight"]}


def in_flight(url: str, headers: dict[str, str] | None = None) -> float:
    text = httpx.get(url + "/metrics", headers=headers, timeout=10).text
    return sum(float(value) for value in IN_FLIGHT.findall(text))


def _counted(url: str, name: str, labels: dict[str, str], headers: dict[str, str] | None) -> float:
    text = httpx.get(url + "/metrics", headers=headers, timeout=10).text
    pattern = re.compile(rf"^{name}\{{([^}}]*)\}} (\S+)$", re.MULTILINE)
    wanted = [f'{key}="{value}"' for key, value in labels.items()]
    return sum(float(value) for found, value in pattern.findall(text) if all(w in found for w in wanted))


def requests_with_status(url: str, route: str, status: int, headers: dict[str, str] | None = None) -> float:
    """``lattice_requests_total`` of ``route`` with ``status``."""
    return _counted(url, "lattice_requests_total", {"route": route, "status": str(status)}, headers)


def errors_of_kind(
    url: str, route: str, kind: str = "client_disconnected", headers: dict[str, str] | None = None
) -> float:
    """``lattice_errors_total`` of ``route`` and ``kind``."""
    return _counted(url, "lattice_errors_total", {"route": route, "kind": kind}, headers)


def wait_idle(url: str, headers: dict[str, str] | None = None, seconds: float = 3.0) -> None:
    """Nothing held: ``/healthz`` admission has nobody waiting or in flight and the ``/metrics``
    in-flight gauge is 0 (``/metrics`` itself is not counted in flight). Polls for ``seconds``."""
    ends = time.monotonic() + seconds
    while True:
        held, gauge = admission(url, headers), in_flight(url, headers)
        if held == {"waiting": 0, "inflight": 0} and gauge == 0:
            return
        if time.monotonic() > ends:
            raise AssertionError(f"still held after {seconds} s: admission {held}, in-flight gauge {gauge}")
        time.sleep(0.05)


async def until(condition: object, seconds: float = 5.0) -> None:
    """Poll ``condition()`` (a callable) until it is true."""
    assert callable(condition)
    ends = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > ends:
            raise AssertionError("the condition did not come true in time")
        await asyncio.sleep(0.02)
