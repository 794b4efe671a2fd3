"""What the gateway costs before it serves anything, and what holding many streams open costs.

    python bench/footprint.py [--starts 5] [--imports 7] [--streams 1000]

- **import**: wall time of ``python -c "import local_lattice.api.app"`` in a fresh process, minus
  the same process importing nothing (the interpreter's own start), median of ``--imports``.
- **ready**: from ``Popen`` of ``lattice serve`` to the first answer of ``/healthz``, median of
  ``--starts`` starts (one idle OpenAI-compatible backend, no engine).
- **idle RSS**: the gateway's resident memory once ready, and after 200 warm-up requests.
- **1,000 open streams**: a slow upstream (in this process, its own thread and loop) sends one
  chunk a second; this process opens ``--streams`` streamed chat completions through the gateway
  at once and waits until every one has its first chunk; the gateway's RSS is read before and
  while they are all open.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import httpx
import orjson
from aiohttp import web

# Run as a script from any directory: the checkout (bench/, tests/support) and its src/ come first.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.support.procs import PYTHON, free_port
from tests.support.servers import backends_toml, gateway_process
from tests.support.upstream import serve_in_thread

from bench.procstat import rss_bytes
from bench.workload import use_this_checkout

KEY = "bench-key"
AUTH = {"Authorization": f"Bearer {KEY}"}
SLOW_MODEL = "slow-sse"
MB = 1024 * 1024


@dataclass(frozen=True, slots=True)
class Footprint:
    import_ms: float
    interpreter_ms: float
    ready_ms: float
    idle_rss_mb: float
    warm_rss_mb: float
    streams: int
    streams_opened: int
    streams_rss_mb: float
    streams_before_rss_mb: float

    @property
    def streams_added_mb(self) -> float:
        return self.streams_rss_mb - self.streams_before_rss_mb


def _wall(argv: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(argv, check=True, capture_output=True, timeout=60)
    return time.perf_counter() - started


def write_bytecode(src: Path) -> None:
    """Compile the checkout's modules as installing the package does. Imports alone never write
    bytecode where PYTHONDONTWRITEBYTECODE is set (the Dockerfile sets it, so do many shells), and
    every start would then compile each module from source: a cost no installed gateway pays."""
    subprocess.run([PYTHON, "-m", "compileall", "-q", str(src)], check=True, capture_output=True, timeout=300)


def import_ms(rounds: int, src: Path) -> tuple[float, float]:
    """Median wall time (ms) of importing the app module in a fresh interpreter, and of the bare start."""
    env_path = f"import sys; sys.path.insert(0, {str(src)!r}); "
    bare = [PYTHON, "-c", env_path]
    full = [PYTHON, "-c", env_path + "import local_lattice.api.app"]
    write_bytecode(src)  # the starts measured by ready_ms (after this) read it too
    _wall(full)  # warm the file cache
    bare_times = [_wall(bare) for _ in range(rounds)]
    full_times = [_wall(full) for _ in range(rounds)]
    interpreter = statistics.median(bare_times) * 1000
    return statistics.median(full_times) * 1000 - interpreter, interpreter


def ready_ms(rounds: int, upstream: str) -> float:
    """Median time from process start to the first ``/healthz`` answer."""
    times = []
    with tempfile.NamedTemporaryFile("w", suffix=".toml", delete=False) as handle:
        handle.write(backends_toml([("idle", upstream)], api_key=KEY))
    try:
        for _ in range(rounds):
            port = free_port()
            argv = [PYTHON, "-m", "local_lattice", "serve", "--config", handle.name, "--port", str(port)]
            env = {"LATTICE_LEDGER_PATH": "off", "MIDDLE_LAYER_API_KEY": "", "LATTICE_CONFIG": ""}
            started = time.perf_counter()
            proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=_env(env))
            try:
                while True:
                    try:
                        httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1.0)
                        break
                    except httpx.HTTPError:
                        if proc.poll() is not None or time.perf_counter() - started > 30:
                            raise RuntimeError("the gateway did not start") from None
                        time.sleep(0.005)
                times.append(time.perf_counter() - started)
            finally:
                proc.terminate()
                proc.wait(10)
    finally:
        Path(handle.name).unlink(missing_ok=True)
    return statistics.median(times) * 1000


def _env(extra: dict[str, str]) -> dict[str, str]:
    import os

    return {**os.environ, **extra}


# --- a slow upstream: one SSE chunk a second ------------------------------------------------------


def slow_app(interval: float, chunks: int) -> web.Application:
    async def models(request: web.Request) -> web.Response:
        return web.json_response({"object": "list", "data": [{"id": SLOW_MODEL, "object": "model"}]})

    async def chat(request: web.Request) -> web.StreamResponse:
        await request.read()
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        for i in range(chunks):
            delta = {"content": f"t{i} "}
            chunk = {"object": "chat.completion.chunk", "model": SLOW_MODEL, "choices": [{"index": 0, "delta": delta}]}
            await resp.write(b"data: " + orjson.dumps(chunk) + b"\n\n")
            await asyncio.sleep(interval)
        await resp.write(b"data: [DONE]\n\n")
        return resp

    app = web.Application()
    app.router.add_get("/v1/models", models)
    app.router.add_post("/v1/chat/completions", chat)
    return app


@contextmanager
def slow_upstream(interval: float = 1.0, chunks: int = 60) -> Iterator[str]:
    with serve_in_thread(slow_app(interval, chunks), cancel_on_hangup=True, backlog=4096) as root:
        yield root + "/v1"


async def hold_streams(url: str, count: int, pid: int) -> tuple[int, float]:
    """Open ``count`` streams at once; once each has its first chunk, read the gateway's RSS."""
    body = orjson.dumps(
        {"model": SLOW_MODEL, "messages": [{"role": "user", "content": "hi"}], "stream": True, "max_tokens": 64}
    )
    opened = 0
    all_open = asyncio.Event()
    release = asyncio.Event()
    connector = aiohttp.TCPConnector(limit=0)
    timeout = aiohttp.ClientTimeout(total=120)

    async def one(session: aiohttp.ClientSession) -> None:
        nonlocal opened
        async with session.post(url, data=body, headers={**AUTH, "Content-Type": "application/json"}) as resp:
            if resp.status != 200:
                raise RuntimeError(f"stream answered {resp.status}: {await resp.text()}")
            await resp.content.readany()
            opened += 1
            if opened == count:
                all_open.set()
            await release.wait()

    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        tasks = [asyncio.create_task(one(session)) for _ in range(count)]
        with suppress(TimeoutError):  # report how many opened rather than fail
            await asyncio.wait_for(all_open.wait(), 90)
        await asyncio.sleep(1.0)  # every stream has passed a chunk or two
        rss = rss_bytes(pid) / MB
        release.set()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    return opened, rss


def streams_memory(count: int) -> tuple[int, float, float]:
    """(streams opened, gateway RSS before, RSS with all open) in MB."""
    extra = "max_concurrency = 0\nmax_connections = 4096\n"
    with slow_upstream() as upstream:
        toml = backends_toml([("slow", upstream)], api_key=KEY) + extra
        with gateway_process(toml, env={"LATTICE_LEDGER_PATH": "off"}) as gw:
            url = gw.url + "/v1/chat/completions"
            pid = gw.proc.pid
            asyncio.run(hold_streams(url, 20, pid))  # warm: pools, first streams, lazy imports
            before = rss_bytes(pid) / MB
            opened, during = asyncio.run(hold_streams(url, count, pid))
    return opened, before, during


def measure(starts: int, imports: int, streams: int, idle_upstream: str, warm_url: str, pid: int) -> Footprint:
    """Everything but the idle RSS comes from processes started here; ``pid`` is a running gateway
    (ready, nothing served yet) behind ``warm_url``, used for the idle figures."""
    idle = rss_bytes(pid) / MB
    with httpx.Client(headers=AUTH) as client:
        body = {"model": "fixed-json", "messages": [{"role": "user", "content": "hi"}]}
        for _ in range(200):
            client.post(warm_url, json=body)
    warm = rss_bytes(pid) / MB
    src = Path(__file__).resolve().parents[1] / "src"
    imp, interpreter = import_ms(imports, src)
    ready = ready_ms(starts, idle_upstream)
    opened, before, during = streams_memory(streams)
    return Footprint(imp, interpreter, ready, idle, warm, streams, opened, during, before)


def lines(fp: Footprint) -> list[str]:
    return [
        f"import local_lattice.api.app : {fp.import_ms:.0f} ms (interpreter start {fp.interpreter_ms:.0f} ms excluded)",
        f"start to /healthz answering : {fp.ready_ms:.0f} ms",
        f"idle RSS (no engine)        : {fp.idle_rss_mb:.1f} MB ready, {fp.warm_rss_mb:.1f} MB after 200 requests",
        f"{fp.streams} open streams         : {fp.streams_opened} open, RSS {fp.streams_before_rss_mb:.1f} MB -> "
        f"{fp.streams_rss_mb:.1f} MB (+{fp.streams_added_mb:.1f} MB, "
        f"{fp.streams_added_mb * 1024 / max(fp.streams_opened, 1):.0f} KB a stream)",
    ]


def main() -> None:
    use_this_checkout()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--starts", type=int, default=5)
    parser.add_argument("--imports", type=int, default=7)
    parser.add_argument("--streams", type=int, default=1000)
    args = parser.parse_args()
    from tests.support.nginx import nginx_upstream

    with (
        nginx_upstream() as ng,
        gateway_process(
            backends_toml([("nginx-json", ng.json)], api_key=KEY), env={"LATTICE_LEDGER_PATH": "off"}
        ) as gw,
    ):
        fp = measure(args.starts, args.imports, args.streams, ng.json, gw.url + "/v1/chat/completions", gw.proc.pid)
    print("\n".join(lines(fp)))


if __name__ == "__main__":
    main()
