"""The gateway's own cost per request, without sockets: the ASGI app called directly in one loop.

    python bench/inprocess.py [--requests 5000] [--mode json|stream] [--profile] [--env KEY=VALUE ...]

Builds the app as ``lattice serve`` does (API key on, the ledger in a temporary file, the timing log
line formatted, redacted and written to ``/dev/null``) over a backend that answers at once with
fixed bytes, then times ``--requests`` chat completions one after another. What it prints is the
microseconds the gateway's own code spends per request — front door, guard, validation, routing,
admission, observer, ledger queue, log line — with no network, upstream client or HTTP parser in
the figure. ``--profile`` prints cProfile's top functions. Steadier than a socket benchmark on a
shared machine, and meant for before/after comparisons of one change.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import importlib
import os
import pstats
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

# Run as a script from any directory: the checkout's src/ comes first, or the tree ``--src=DIR`` names
# (an exported older version, for before/after figures).
sys.path.insert(
    0, next((a.split("=", 1)[1] for a in sys.argv if a.startswith("--src=")), str(Path(__file__).parents[1] / "src"))
)

import orjson

from local_lattice.api.app import create_app, redactor_for
from local_lattice.config import load
from local_lattice.observability.logs import configure
from local_lattice.security.redact import install
from local_lattice.types import (
    BackendHealth,
    BackendRequest,
    BackendResponse,
    ChunkStream,
    ModelInfo,
    StreamChunk,
    Usage,
)

KEY = "bench-key-123"
MODEL = "fixed"
ANSWER = orjson.dumps(
    {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1_700_000_000,
        "model": MODEL,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello."}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7},
    }
)
CHUNKS = [
    orjson.dumps({"object": "chat.completion.chunk", "model": MODEL, "choices": [{"index": 0, "delta": d}]})
    for d in ({"role": "assistant"}, *({"content": f"w{i} "} for i in range(6)), {})
]


class FixedBackend:
    """Answers at once with fixed bytes: what is left to time is the gateway."""

    name = "fixed"

    async def models(self) -> list[ModelInfo]:
        return [ModelInfo(id=MODEL, backend=self.name)]

    async def complete(self, request: BackendRequest) -> BackendResponse:
        return BackendResponse(ANSWER, Usage(prompt_tokens=5, completion_tokens=2))

    def stream(self, request: BackendRequest) -> ChunkStream:
        return self._stream()

    async def _stream(self) -> ChunkStream:
        for payload in CHUNKS:
            yield StreamChunk(payload)

    async def health(self) -> BackendHealth:
        return BackendHealth(ok=True, detail="fixed")

    async def aclose(self) -> None:
        return None


def body_of(mode: str) -> bytes:
    messages = [{"role": "user", "content": "Say hello in one short sentence."}]
    return orjson.dumps({"model": MODEL, "messages": messages, "max_tokens": 16, "stream": mode == "stream"})


async def one(app: Any, body: bytes) -> int:
    headers = [
        (b"host", b"127.0.0.1:8000"),
        (b"content-type", b"application/json"),
        (b"authorization", b"Bearer " + KEY.encode()),
        (b"content-length", str(len(body)).encode()),
    ]
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
        "path": "/v1/chat/completions", "raw_path": b"/v1/chat/completions", "query_string": b"",
        "root_path": "", "headers": headers, "client": ("127.0.0.1", 50000), "server": ("127.0.0.1", 8000),
        "state": {},
    }  # fmt: skip
    sent = False
    never = asyncio.Event()
    status = 0

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        await never.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]

    await app(scope, receive, send)
    return status


async def drive(app: Any, body: bytes, requests: int, profile: cProfile.Profile | None) -> tuple[list[float], float]:
    async with app.router.lifespan_context(app):
        for _ in range(200):  # warm-up: lazy imports, model list, label children
            assert await one(app, body) == 200
        settle_collector()  # as ``lattice serve`` does once started
        times = []
        cpu = time.process_time()
        if profile is not None:
            profile.enable()
        for _ in range(requests):
            started = time.perf_counter()
            status = await one(app, body)
            times.append(time.perf_counter() - started)
            if status != 200:
                raise RuntimeError(f"status {status}")
        if profile is not None:
            profile.disable()
        cpu = time.process_time() - cpu
        ledger = app.state.gateway.observer.ledger
        if ledger is not None:
            ledger.flush()
    return times, cpu


def settle_collector() -> None:
    for name in ("local_lattice.gc_settings", "local_lattice.heap"):  # older trees (``--src``) call it heap
        try:
            module = importlib.import_module(name)
        except ImportError:
            continue
        module.settle()
        return


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--mode", choices=("json", "stream"), default="json")
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--top", type=int, default=35)
    parser.add_argument("--src", help="run the local_lattice package under this directory (use --src=DIR)")
    parser.add_argument("--env", action="append", default=[], help="KEY=VALUE config setting (repeatable)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="lattice-inprocess-") as tmp:
        env = {"MIDDLE_LAYER_API_KEY": KEY, "LATTICE_LEDGER_PATH": f"{tmp}/ledger.sqlite3"}
        env.update(dict(pair.split("=", 1) for pair in args.env))
        config = load(None, env)
        handler = configure(config.observability.log_format)
        handler.setStream(open(os.devnull, "w"))  # noqa: SIM115 - lives as long as the process
        install(redactor_for(config))
        if not config.server.log_timing:
            import logging

            logging.getLogger("lattice.request").setLevel(logging.WARNING)
        app = create_app(config, {"fixed": FixedBackend()})
        profile = cProfile.Profile() if args.profile else None
        times, cpu = asyncio.run(drive(app, body_of(args.mode), args.requests, profile))
    us = sorted(t * 1e6 for t in times)
    print(
        f"{args.mode}: {len(us)} requests in-process, per request: median {statistics.median(us):.1f} us  "
        f"mean {statistics.fmean(us):.1f} us  p90 {us[int(0.9 * len(us))]:.1f} us  "
        f"cpu {cpu / len(us) * 1e6:.1f} us"
    )
    if profile is not None:
        pstats.Stats(profile).sort_stats("tottime").print_stats(args.top)


if __name__ == "__main__":
    main()
