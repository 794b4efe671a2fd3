"""The scenarios ``run.py`` adds to its wrk table: LiteLLM's proxy as a peer, swarm timing, overload,
the footprint (import, ready, memory), the soak run and the engine hook. Each returns printable lines.

LiteLLM runs from its own virtual environment (``--litellm PATH`` to its ``litellm`` command) so its
pinned dependencies never touch the gateway's: ``python -m venv /tmp/litellm-venv &&
/tmp/litellm-venv/bin/pip install 'litellm[proxy]==1.100.0'``.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

from tests.support.nginx import JSON_MODEL, SSE_MODEL, NginxUrls, nginx_upstream
from tests.support.procs import RunningProcess, free_port, run_process
from tests.support.servers import backends_toml, gateway_process

from bench import footprint, swarm_bench
from bench.soak import soak_against

BENCH = Path(__file__).resolve().parent


@contextlib.contextmanager
def litellm_proxy(command: str, ng: NginxUrls) -> Iterator[RunningProcess]:
    """LiteLLM's proxy with one model per nginx answer kind, no key (it asks for none), logs quiet."""
    config = (
        "model_list:\n"
        f"  - model_name: {JSON_MODEL}\n    litellm_params:\n      model: openai/{JSON_MODEL}\n"
        f"      api_base: {ng.json}\n      api_key: none\n"
        f"  - model_name: {SSE_MODEL}\n    litellm_params:\n      model: openai/{SSE_MODEL}\n"
        f"      api_base: {ng.sse}\n      api_key: none\n"
        "litellm_settings:\n  set_verbose: false\n"
    )
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as handle:
        handle.write(config)
    port = free_port()
    argv = [command, "--config", handle.name, "--port", str(port), "--host", "127.0.0.1", "--telemetry", "False"]
    env = {"LITELLM_LOG": "ERROR", "LITELLM_LOCAL_MODEL_COST_MAP": "True", "PYTHONPATH": ""}
    base = f"http://127.0.0.1:{port}"
    try:
        with run_process(argv, ready_url=base + "/health/liveliness", base_url=base, env=env, timeout=180) as proc:
            yield proc
    finally:
        Path(handle.name).unlink(missing_ok=True)


def swarm_lines(runs: int) -> list[str]:
    """``swarm_bench``: fanout wall/slowest and first-success wall/fastest over real HTTP."""
    out = io.StringIO()
    closed: dict[str, float] = {}
    with swarm_bench.upstream(closed) as url, contextlib.redirect_stdout(out):
        asyncio.run(swarm_bench.bench(url, closed, runs))
    return out.getvalue().splitlines()


def overload_lines(duration: float, max_tokens: int) -> list[str]:
    """``overload_bench`` in a short run (real llama.cpp server with SmolLM2); skipped without llama_cpp."""
    try:
        import llama_cpp  # noqa: F401 - presence check only
    except ImportError:
        return ["overload: skipped (llama-cpp-python is not installed)"]
    argv = [sys.executable, str(BENCH / "overload_bench.py"), "--duration", str(duration)]
    argv += ["--max-tokens", str(max_tokens)]
    env = {**os.environ, "PYTHONPATH": str(BENCH.parent / "src")}
    done = subprocess.run(argv, capture_output=True, timeout=duration + 300, check=False, env=env)
    lines = done.stdout.decode(errors="replace").splitlines()
    if done.returncode != 0:
        lines.append(f"overload bench failed ({done.returncode}): {done.stderr.decode(errors='replace')[-400:]}")
    return lines


def footprint_lines(starts: int, imports: int, streams: int) -> tuple[list[str], footprint.Footprint]:
    with (
        nginx_upstream() as ng,
        gateway_process(
            backends_toml([("nginx-json", ng.json)], api_key=footprint.KEY), env={"LATTICE_LEDGER_PATH": "off"}
        ) as gw,
    ):
        fp = footprint.measure(starts, imports, streams, ng.json, gw.url + "/v1/chat/completions", gw.proc.pid)
    return footprint.lines(fp), fp


def soak_lines(url: str, pid: int, requests: int, connections: int) -> tuple[list[str], bool]:
    result = soak_against(url, pid, requests, connections, "json")
    return result.lines(), result.passed


def engine_lines() -> list[str]:
    """Engine tokens/s through the gateway vs raw comes from ``bench/engine_bench.py`` when present."""
    script = BENCH / "engine_bench.py"
    if not script.exists():
        return ["engine tokens/s: bench/engine_bench.py is not in this checkout (no in-process engine yet)"]
    env = {**os.environ, "PYTHONPATH": str(BENCH.parent / "src")}
    done = subprocess.run([sys.executable, str(script)], capture_output=True, timeout=900, check=False, env=env)
    lines = done.stdout.decode(errors="replace").splitlines()
    if done.returncode != 0:
        lines.append(f"engine bench failed ({done.returncode}): {done.stderr.decode(errors='replace')[-400:]}")
    return lines
