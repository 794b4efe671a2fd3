"""What hostile peers cost the gateway: memory under the header and body attacks, and whether
well-behaved clients are served while sockets flood it.

    python bench/hostile.py [--src SRC] [--skip-floods]

Runs one gateway (from ``SRC``'s ``local_lattice``, default this checkout; an older exported tree
measures the before) with its default limits in front of a scripted raw upstream, and prints:

1. the gateway's resident and peak memory (``VmRSS`` / ``VmHWM`` from ``/proc``) before and after
   a 256 MiB request-header block sent on one connection, and after the answer to a stream and a
   non-stream request whose upstream answers a gzip body of 500 MiB of zeros (~500 KB on the wire);
2. 500 connections dribbling a head (one byte every 0.2 s): when the gateway closed them, and how
   many of the well-behaved requests sent meanwhile got a 200;
3. 20,000 idle sockets (flood processes, each from its own loopback address): the gateway's peak
   open files and the well-behaved requests' statuses meanwhile.

Every socket is on loopback; every step ends by itself.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from urllib.parse import urlsplit

# Run as a script from any directory: the checkout (bench/, tests/support) and its src/ come first.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx
import orjson
from tests.support.floods import shares
from tests.support.hostile import raw_upstream, rss_kib
from tests.support.procs import PYTHON, RunningProcess
from tests.support.raw_http import RawRequest, Step, sized
from tests.support.servers import gateway_process

ROOT = Path(__file__).resolve().parents[1]
MESSAGES = [{"role": "user", "content": "hi"}]
JSON = [("Content-Type", "application/json")]


def gzip_bomb(size: int) -> bytes:
    import zlib

    packer = zlib.compressobj(9, zlib.DEFLATED, zlib.MAX_WBITS | 16)
    block = bytes(1 << 20)
    return b"".join([*(packer.compress(block) for _ in range(size >> 20)), packer.flush()])


class Upstream:
    def __init__(self) -> None:
        self.bomb = gzip_bomb(500 << 20)

    def __call__(self, request: RawRequest) -> list[Step]:
        if request.target.endswith("/models"):
            return [sized(orjson.dumps({"data": [{"id": "bomb"}, {"id": "ok"}]}), JSON)]
        body = orjson.loads(request.body)
        if body["model"] == "bomb":
            kind = "text/event-stream" if body.get("stream") else "application/json"
            return [sized(self.bomb, [("Content-Type", kind), ("Content-Encoding", "gzip")])]
        message = {"role": "assistant", "content": "ok"}
        answer = {"object": "chat.completion", "choices": [{"index": 0, "message": message, "finish_reason": "stop"}]}
        return [sized(orjson.dumps(answer), JSON)]


def mib(kib: int) -> str:
    return f"{kib / 1024:.0f} MiB"


def memory_line(gateway: RunningProcess, what: str, before: tuple[int, int]) -> tuple[int, int]:
    now = rss_kib(gateway.proc.pid)
    print(f"  {what:<44} RSS {mib(before[0])} -> {mib(now[0])}, peak {mib(before[1])} -> {mib(now[1])}", flush=True)
    return now


def header_attack(port: int) -> str:
    block = b"a" * (1 << 20)
    with socket.create_connection(("127.0.0.1", port), timeout=60) as sock:
        sock.sendall(b"GET /v1/models HTTP/1.1\r\nHost: t\r\nX-Block: ")
        with contextlib.suppress(OSError):
            for _ in range(256):
                sock.sendall(block)
            sock.sendall(b"\r\n\r\n")
        try:
            return sock.recv(100).split(b"\r\n", 1)[0].decode() or "closed"
        except OSError as exc:
            return type(exc).__name__


def body_attack(gateway: RunningProcess, stream: bool) -> str:
    body = {"model": "bomb", "messages": MESSAGES, "stream": stream}
    try:
        response = httpx.post(gateway.url + "/v1/chat/completions", json=body, timeout=120)
    except httpx.HTTPError as exc:
        return type(exc).__name__
    return f"{response.status_code} {response.text[:90]!r}"


def flood(mode: str, port: int, count: int, seconds: float, *extra: str) -> subprocess.Popen[str]:
    argv = [PYTHON, "-m", "tests.support.floods", mode, "--port", str(port), "--count", str(count)]
    return subprocess.Popen([*argv, "--seconds", str(seconds), *extra], cwd=ROOT, stdout=subprocess.PIPE, text=True)


def served_meanwhile(gateway: RunningProcess, proc: subprocess.Popen[str]) -> Counter[str]:
    statuses: Counter[str] = Counter()
    body = {"model": "ok", "messages": MESSAGES}
    while proc.poll() is None and sum(statuses.values()) < 300:
        try:
            status = str(httpx.post(gateway.url + "/v1/chat/completions", json=body, timeout=10).status_code)
        except httpx.HTTPError as exc:
            status = type(exc).__name__
        statuses[status] += 1
        time.sleep(0.1)
    return statuses


def floods(gateway: RunningProcess, port: int) -> None:
    proc = flood("dribble", port, 500, 20, "--interval", "0.2")
    statuses = served_meanwhile(gateway, proc)
    print(f"  500 dribblers: {proc.communicate(timeout=60)[0].strip()}; requests meanwhile {dict(statuses)}")
    procs = [flood("idle", port, n, 20, "--source", f"127.0.0.{i + 2}") for i, n in enumerate(shares(20_000))]
    peak = [0]
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.2):
            with contextlib.suppress(OSError):
                peak[0] = max(peak[0], len(os.listdir(f"/proc/{gateway.proc.pid}/fd")))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    statuses = served_meanwhile(gateway, procs[0])
    done.set()
    reports = [p.communicate(timeout=120)[0].strip() for p in procs]
    print(f"  20,000 idle sockets: {reports}; gateway peak open files {peak[0]}; requests meanwhile {dict(statuses)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--src", type=Path, default=ROOT / "src", help="the local_lattice tree to run")
    parser.add_argument("--skip-floods", action="store_true")
    args = parser.parse_args()
    env = {"PYTHONPATH": str(args.src.resolve())}
    with raw_upstream(Upstream()) as upstream:
        toml = f'[[backends]]\nname = "raw"\nurl = "{upstream.url}/v1"\n'
        with gateway_process(toml, env=env) as gateway:
            port = urlsplit(gateway.url).port
            assert port is not None
            print(f"gateway from {args.src} (default limits), pid {gateway.proc.pid}")
            at = rss_kib(gateway.proc.pid)
            answer = header_attack(port)
            at = memory_line(gateway, f"256 MiB header block -> {answer}", at)
            for stream in (False, True):
                answer = body_attack(gateway, stream)
                at = memory_line(gateway, f"gzip bomb, stream={stream} -> {answer[:20]}", at)
            if not args.skip_floods:
                floods(gateway, port)


if __name__ == "__main__":
    main()
