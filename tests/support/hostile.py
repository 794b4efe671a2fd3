"""Hostile peers for the real gateway process, and the check that a fault left nothing held.

``raw_upstream`` runs a ``RawServer`` (scripted bytes on a real loopback socket) on its own thread
and event loop, so a gateway process can use it as its upstream while the test talks to the
gateway. ``assert_nothing_held`` waits (briefly) until the gateway's ``/metrics`` shows no request
in flight and ``/healthz`` shows no admission slot held and nobody waiting. ``rss_kib`` reads a
process's resident and peak memory from ``/proc``.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Iterator

import httpx

from tests.support.procs import RunningProcess
from tests.support.raw_http import Answer, RawServer


@contextlib.contextmanager
def raw_upstream(answer: Answer) -> Iterator[RawServer]:
    """A ``RawServer`` playing ``answer`` on a background thread; its ``url`` is the root URL.
    ``answer`` runs on that thread (scripts must not use the test loop's events)."""
    loop = asyncio.new_event_loop()
    server = RawServer(answer)
    started = threading.Event()

    def serve() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(server.__aenter__())
        started.set()
        loop.run_forever()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    assert started.wait(10), "the raw upstream did not start"
    try:
        yield server
    finally:
        asyncio.run_coroutine_threadsafe(server.__aexit__(None, None, None), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


def in_flight(gateway: RunningProcess, headers: dict[str, str] | None = None) -> dict[str, float]:
    """``lattice_requests_in_flight`` by route, from ``/metrics``."""
    text = httpx.get(gateway.url + "/metrics", headers=headers or {}, timeout=10).text
    found: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("lattice_requests_in_flight{"):
            labels, _, value = line.rpartition(" ")
            found[labels] = float(value)
    return found


def assert_nothing_held(gateway: RunningProcess, headers: dict[str, str] | None = None, seconds: float = 5.0) -> None:
    """No request in flight, no admission slot held, nobody queued (the gateway finishes a
    request's record just after its last byte, so this waits a little for it)."""
    deadline = time.monotonic() + seconds
    while True:
        flights = in_flight(gateway, headers)
        admission = httpx.get(gateway.url + "/healthz", timeout=10).json()["admission"]
        held = {route: n for route, n in flights.items() if n and "/metrics" not in route}
        if not held and admission["inflight"] == 0 and admission["waiting"] == 0:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"still held: in flight {held}, admission {admission}")
        time.sleep(0.05)


def rss_kib(pid: int) -> tuple[int, int]:
    """(resident, peak resident) KiB of a process (``VmRSS``, ``VmHWM``)."""
    fields: dict[str, int] = {}
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            name, _, value = line.partition(":")
            if name in ("VmRSS", "VmHWM"):
                fields[name] = int(value.split()[0])
    return fields["VmRSS"], fields["VmHWM"]
