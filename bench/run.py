"""The benchmark: nginx direct vs the bare passthrough vs the gateway, in one run.

    python bench/run.py [--quick] [--json results.json]

Starts a real nginx with fixed answers, two bare passthroughs (``baseline_passthrough.py``, one per
nginx answer kind) and the gateway as a real process (``lattice serve`` with API-key auth on and
one backend per nginx answer kind), then drives ``wrk -t1`` at each for non-streaming and streaming
chat completions at c=1, 16 and 64, and probes the time to first byte of streamed answers. All on
loopback; every run is bounded. Figures are only comparable within one run: the machine is shared.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

# Run as a script from any directory: the checkout (bench/, tests/support) and its src/ come first.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import orjson
from tests.support.nginx import JSON_MODEL, SSE_MODEL, NginxUrls, nginx_upstream
from tests.support.servers import backends_toml, gateway_process

from bench.baseline_passthrough import passthrough_server
from bench.load import WrkResult, measure_ttfb, run_wrk
from bench.report import machine_lines, table

KEY = "bench-key"


def nginx_config(ng: NginxUrls) -> str:
    return backends_toml([("nginx-json", ng.json), ("nginx-sse", ng.sse)], api_key=KEY)


HEADERS = {"Content-Type": "application/json", "Authorization": f"Bearer {KEY}"}
TARGETS = ("nginx", "baseline", "gateway")
MODES = ("json", "stream")
CONCURRENCY = (1, 16, 64)
# What the gateway aims at on these machines (auth on): see docs/benchmarks.md.
TARGET_RPS_C16 = 4000.0
TARGET_ADDED_P50_MS = 0.5
TARGET_ADDED_TTFB_MS = 1.0


def request_body(mode: str) -> bytes:
    messages = [{"role": "user", "content": "Say hello in one short sentence."}]
    if mode == "stream":
        return orjson.dumps({"model": SSE_MODEL, "messages": messages, "max_tokens": 16, "stream": True})
    return orjson.dumps({"model": JSON_MODEL, "messages": messages, "max_tokens": 16})


@dataclass(frozen=True, slots=True)
class Row:
    mode: str
    connections: int
    target: str
    result: WrkResult


def drive(urls: dict[str, dict[str, str]], seconds: float) -> list[Row]:
    rows: list[Row] = []
    for mode in MODES:
        body = request_body(mode)
        for target in TARGETS:  # warm-up, not counted: first connections, caches, lazy imports
            run_wrk(urls[mode][target], body, HEADERS, 16, 1)
        for connections in CONCURRENCY:
            for target in TARGETS:  # targets interleaved per concurrency so drift hits all alike
                result = run_wrk(urls[mode][target], body, HEADERS, connections, seconds)
                rows.append(Row(mode, connections, target, result))
                print(
                    f"  {mode:6} c={connections:<3} {target:8} {result.rps:8.0f} req/s  "
                    f"p50 {result.p50_ms:.3f} ms  p99 {result.p99_ms:.3f} ms  errors {result.errors}",
                    flush=True,
                )
    return rows


def results_table(rows: list[Row]) -> str:
    index = {(r.mode, r.connections, r.target): r.result for r in rows}
    out = []
    for r in rows:
        direct = index[(r.mode, r.connections, "nginx")]
        base = index[(r.mode, r.connections, "baseline")]
        out.append(
            [
                r.mode,
                str(r.connections),
                r.target,
                f"{r.result.rps:.0f}",
                f"{r.result.p50_ms:.3f}",
                f"{r.result.p99_ms:.3f}",
                f"{r.result.rps / direct.rps:.2f}" if direct.rps else "-",
                f"{r.result.rps / base.rps:.2f}" if base.rps else "-",
                str(r.result.errors),
            ]
        )
    header = ["mode", "c", "target", "req/s", "p50 ms", "p99 ms", "x direct", "x baseline", "errors"]
    return table(header, out)


def verdict(rows: list[Row], ttfb: dict[str, tuple[float, float]]) -> list[str]:
    index = {(r.mode, r.connections, r.target): r.result for r in rows}
    lines = []
    for mode in MODES:
        gw, base, direct = (index[(mode, 1, t)] for t in ("gateway", "baseline", "nginx"))
        lines.append(
            f"{mode:6} c=1 added p50: gateway {gw.p50_ms - direct.p50_ms:+.3f} ms vs nginx "
            f"(baseline {base.p50_ms - direct.p50_ms:+.3f} ms), gateway {gw.p50_ms - base.p50_ms:+.3f} ms vs baseline; "
            f"added p99 {gw.p99_ms - direct.p99_ms:+.3f} ms vs nginx"
        )
    rps = index[("json", 16, "gateway")].rps
    base16 = index[("json", 16, "baseline")].rps
    added = index[("json", 1, "gateway")].p50_ms - index[("json", 1, "nginx")].p50_ms
    added_ttfb = ttfb["gateway"][0] - ttfb["nginx"][0]
    lines += [
        f"target c=16 >= {TARGET_RPS_C16:.0f} req/s (auth on): {rps:.0f} req/s = {rps / TARGET_RPS_C16:.0%} of target, "
        f"{rps / base16:.0%} of the bare passthrough -> {'met' if rps >= TARGET_RPS_C16 else 'MISSED'}",
        f"target c=1 added p50 <= {TARGET_ADDED_P50_MS} ms: {added:.3f} ms -> "
        f"{'met' if added <= TARGET_ADDED_P50_MS else 'MISSED'}",
        f"target stream added TTFB <= {TARGET_ADDED_TTFB_MS} ms: {added_ttfb:.3f} ms -> "
        f"{'met' if added_ttfb <= TARGET_ADDED_TTFB_MS else 'MISSED'}",
    ]
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="2 s per wrk run and fewer TTFB rounds")
    parser.add_argument("--seconds", type=float, default=None, help="seconds per wrk run (default 5, quick 2)")
    parser.add_argument("--ttfb-rounds", type=int, default=None, help="streamed requests per target (default 300)")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures to this file")
    args = parser.parse_args()
    seconds = args.seconds or (2.0 if args.quick else 5.0)
    rounds = args.ttfb_rounds or (60 if args.quick else 300)
    print("\n".join(machine_lines()), flush=True)
    started = time.monotonic()
    with contextlib.ExitStack() as stack:
        ng = stack.enter_context(nginx_upstream())
        base_json = stack.enter_context(passthrough_server(ng.json))
        base_sse = stack.enter_context(passthrough_server(ng.sse))
        gw = stack.enter_context(gateway_process(nginx_config(ng)))
        chat = "/chat/completions"
        urls = {
            "json": {"nginx": ng.json + chat, "baseline": base_json + chat, "gateway": gw.url + "/v1" + chat},
            "stream": {"nginx": ng.sse + chat, "baseline": base_sse + chat, "gateway": gw.url + "/v1" + chat},
        }
        print(f"\nwrk -t1, {seconds:g} s per run, auth on at the gateway (same request bytes everywhere)", flush=True)
        rows = drive(urls, seconds)
        print(f"\nstreaming time to first byte, {rounds} requests per target, one connection each", flush=True)
        ttfb = measure_ttfb(urls["stream"], request_body("stream"), HEADERS, rounds)
    print("\n" + results_table(rows))
    print()
    for name, (median, p90) in ttfb.items():
        added = median - ttfb["nginx"][0]
        print(f"TTFB {name:8}: median {median:.3f} ms  p90 {p90:.3f} ms  (added vs nginx {added:+.3f} ms)")
    print()
    print("\n".join(verdict(rows, ttfb)))
    print(f"\n(total {time.monotonic() - started:.0f} s)")
    if args.json is not None:
        data = {"machine": machine_lines(), "rows": [asdict(r) for r in rows], "ttfb_ms": ttfb}
        args.json.write_text(json.dumps(data, indent=2), encoding="utf-8")


if __name__ == "__main__":
    main()
