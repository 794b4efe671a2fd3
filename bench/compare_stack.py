"""Measure the stack choices behind the gateway on the same bare passthrough.

    python bench/compare_stack.py [--quick]

Upstream HTTP client: aiohttp vs httpx vs the gateway's own ``http1`` pool (under raw ASGI).
Framework: raw ASGI vs Starlette vs FastAPI (FastAPI only when installed; it is a benchmark-only
dependency). Each variant is the same
passthrough (``baseline_passthrough.py``) in its own uvicorn process (uvloop, httptools) in front
of the same nginx, driven by ``wrk -t1`` at c=16 (non-streaming and streaming) and c=1.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
from pathlib import Path

# Run as a script from any directory: the checkout (bench/, tests/support) and its src/ come first.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.support.nginx import nginx_upstream

from bench.baseline_passthrough import ClientName, FrameworkName, passthrough_server
from bench.load import run_wrk
from bench.report import machine_lines, table
from bench.workload import HEADERS, request_body, use_this_checkout

VARIANTS: tuple[tuple[ClientName, FrameworkName], ...] = (
    ("aiohttp", "raw"),
    ("httpx", "raw"),
    ("http1", "raw"),
    ("aiohttp", "starlette"),
    ("httpx", "starlette"),
    ("aiohttp", "fastapi"),
)


def measure(
    upstream_json: str, upstream_sse: str, client: ClientName, framework: FrameworkName, seconds: float
) -> list[str]:
    chat = "/chat/completions"
    json_body, stream_body = request_body("json"), request_body("stream")
    with (
        passthrough_server(upstream_json, client, framework) as plain,
        passthrough_server(upstream_sse, client, framework) as streaming,
    ):
        run_wrk(plain + chat, json_body, HEADERS, 16, 1)  # warm-up
        run_wrk(streaming + chat, stream_body, HEADERS, 16, 1)
        c16 = run_wrk(plain + chat, json_body, HEADERS, 16, seconds)
        s16 = run_wrk(streaming + chat, stream_body, HEADERS, 16, seconds)
        c1 = run_wrk(plain + chat, json_body, HEADERS, 1, seconds)
    errors = c16.errors + s16.errors + c1.errors
    return [
        client,
        framework,
        f"{c16.rps:.0f}",
        f"{c16.p50_ms:.3f}",
        f"{s16.rps:.0f}",
        f"{s16.p50_ms:.3f}",
        f"{c1.rps:.0f}",
        f"{c1.p50_ms:.3f}",
        str(errors),
    ]


def main() -> None:
    use_this_checkout()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="2 s per wrk run instead of 5")
    args = parser.parse_args()
    seconds = 2.0 if args.quick else 5.0
    print("\n".join(machine_lines()), flush=True)
    variants = [v for v in VARIANTS if v[1] != "fastapi" or importlib.util.find_spec("fastapi") is not None]
    rows = []
    with nginx_upstream() as ng:
        for client, framework in variants:
            rows.append(measure(ng.json, ng.sse, client, framework, seconds))
            print("  " + "  ".join(rows[-1]), flush=True)
    header = [
        "client",
        "framework",
        "c16 req/s",
        "c16 p50",
        "stream c16 req/s",
        "stream p50",
        "c1 req/s",
        "c1 p50",
        "errors",
    ]
    print(f"\nwrk -t1, {seconds:g} s per run; latencies in ms\n")
    print(table(header, rows))


if __name__ == "__main__":
    main()
