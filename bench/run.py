"""The benchmark, in one command: every figure the gateway is held to.

    python bench/run.py [--quick] [--rounds 3] [--soak] [--litellm PATH] [--json results.json] [--no-docs]

1. wrk: nginx direct vs the bare passthrough (``baseline_passthrough.py``) vs the gateway as a real
   process (``lattice serve``: API key on, the ledger in a temporary file, the timing log line on),
   and LiteLLM's proxy when ``--litellm`` names its command; non-streaming and streaming chat
   completions at c=1, 16 and 64, each the median of ``--rounds`` interleaved runs; then the time
   to first byte of streamed answers.
2. swarm fanout and first-success (``swarm_bench.py``), overload (``overload_bench.py``, short run
   against a real llama.cpp server), the footprint (``footprint.py``: import, ready, idle RSS,
   1,000 open streams), engine tokens/s (``engine_bench.py`` when present) and, with ``--soak``,
   the soak run (``soak.py``: 20,000 requests at c=64).
3. Each figure against its target; a full run (not ``--quick``) writes the report between the
   markers in ``docs/benchmarks.md``.

All on loopback; every run is bounded. Figures are only comparable within one run: the machine is
shared.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

# Run as a script from any directory: the checkout (bench/, tests/support) and its src/ come first.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.support.nginx import nginx_upstream
from tests.support.servers import gateway_process

from bench import scenarios
from bench.baseline_passthrough import passthrough_server
from bench.load import WrkResult, measure_ttfb, run_wrk
from bench.report import machine_lines, table, write_section
from bench.workload import HEADERS, nginx_config, request_body, use_this_checkout

MODES = ("json", "stream")
CONCURRENCY = (1, 16, 64)
DOCS = Path(__file__).resolve().parents[1] / "docs" / "benchmarks.md"


@dataclass(frozen=True, slots=True)
class Row:
    mode: str
    connections: int
    target: str
    result: WrkResult


def median_run(runs: list[WrkResult]) -> WrkResult:
    """The run with the median req/s (its latencies with it); errors of all runs added up."""
    middle = sorted(runs, key=lambda r: r.rps)[len(runs) // 2]
    return WrkResult(middle.requests, middle.seconds, middle.p50_ms, middle.p99_ms, sum(r.errors for r in runs))


def drive(urls: dict[str, dict[str, str]], seconds: float, rounds: int) -> list[Row]:
    """Every target at every concurrency, ``rounds`` times with the targets' order rotated each
    round (a shared machine's drift hits them all alike); the median round counts."""
    rows: list[Row] = []
    for mode in MODES:
        body = request_body(mode)
        targets = list(urls[mode])
        for target in targets:  # warm-up, not counted: first connections, caches, lazy imports
            run_wrk(urls[mode][target], body, HEADERS, 16, 1)
        for connections in CONCURRENCY:
            runs: dict[str, list[WrkResult]] = {target: [] for target in targets}
            for round_no in range(rounds):
                shift = round_no % len(targets)
                for target in targets[shift:] + targets[:shift]:
                    result = run_wrk(urls[mode][target], body, HEADERS, connections, seconds)
                    runs[target].append(result)
                    print(
                        f"  {mode:6} c={connections:<3} {target:8} {result.rps:8.0f} req/s  "
                        f"p50 {result.p50_ms:.3f} ms  p99 {result.p99_ms:.3f} ms  errors {result.errors}",
                        flush=True,
                    )
            rows.extend(Row(mode, connections, target, median_run(runs[target])) for target in targets)
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


def _check(name: str, value: str, ok: bool | None) -> str:
    verdict = "-" if ok is None else ("met" if ok else "MISSED")
    return f"{name:44} {value:44} {verdict}"


def verdict(rows: list[Row], ttfb: dict[str, tuple[float, float]], extra: dict[str, float]) -> list[str]:
    """Every target of the gateway, measured in this run, met or missed."""
    index = {(r.mode, r.connections, r.target): r.result for r in rows}
    lines = []
    for mode in MODES:
        gw, base, direct = (index[(mode, 1, t)] for t in ("gateway", "baseline", "nginx"))
        lines.append(
            f"{mode:6} c=1 added p50: gateway {gw.p50_ms - direct.p50_ms:+.3f} ms vs nginx "
            f"(baseline {base.p50_ms - direct.p50_ms:+.3f} ms), gateway {gw.p50_ms - base.p50_ms:+.3f} ms vs baseline; "
            f"added p99 {gw.p99_ms - direct.p99_ms:+.3f} ms vs nginx"
        )
    gw16, base16 = index[("json", 16, "gateway")], index[("json", 16, "baseline")]
    share = gw16.rps / base16.rps if base16.rps else 0.0
    added_p50 = index[("json", 1, "gateway")].p50_ms - index[("json", 1, "nginx")].p50_ms
    added_p99 = index[("json", 1, "gateway")].p99_ms - index[("json", 1, "nginx")].p99_ms
    added_ttfb = ttfb["gateway"][0] - ttfb["nginx"][0]
    lines += ["", _check("target", "measured", None).replace(" -", "  verdict")]
    lines.append(_check("c=16 >= 50% of the bare passthrough", f"{gw16.rps:.0f} / {base16.rps:.0f} = {share:.0%}",
                        share >= 0.5))  # fmt: skip
    lite = index.get(("json", 16, "litellm"))
    if lite is not None and lite.rps:
        times = gw16.rps / lite.rps
        lines.append(
            _check("c=16 >= 25x LiteLLM proxy", f"{gw16.rps:.0f} / {lite.rps:.0f} = {times:.1f}x", times >= 25)
        )
    else:
        lines.append(_check("c=16 >= 25x LiteLLM proxy", "not measured (pass --litellm PATH)", None))
    lines.append(_check("c=1 added p50 <= 0.5 ms (vs nginx direct)", f"{added_p50:.3f} ms", added_p50 <= 0.5))
    lines.append(_check("c=1 added p99 <= 2 ms (vs nginx direct)", f"{added_p99:.3f} ms", added_p99 <= 2.0))
    lines.append(_check("stream added time to first byte <= 1 ms", f"{added_ttfb:.3f} ms", added_ttfb <= 1.0))
    for name, key, limit, unit in (
        ("idle RSS <= 120 MB (no engine)", "idle_rss_mb", 120.0, "MB"),
        ("1,000 open streams <= +200 MB", "streams_added_mb", 200.0, "MB"),
        ("import <= 300 ms", "import_ms", 300.0, "ms"),
        ("ready (start to /healthz) <= 1.5 s", "ready_ms", 1500.0, "ms"),
    ):
        value = extra.get(key)
        lines.append(_check(name, "not measured" if value is None else f"{value:.1f} {unit}",
                            None if value is None else value <= limit))  # fmt: skip
    if "soak_passed" in extra:
        lines.append(_check("soak: 0 errors, RSS 2nd half within 10%", "see soak lines", bool(extra["soak_passed"])))
    return lines


def wrk_section(
    args: argparse.Namespace, seconds: float, rounds: int
) -> tuple[list[Row], dict[str, tuple[float, float]], list[str]]:
    """The wrk table and time to first byte (and the soak run against the same gateway)."""
    soak: list[str] = []
    with contextlib.ExitStack() as stack:
        tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="lattice-bench-"))
        ng = stack.enter_context(nginx_upstream())
        base_json = stack.enter_context(passthrough_server(ng.json))
        base_sse = stack.enter_context(passthrough_server(ng.sse))
        env = {"LATTICE_LEDGER_PATH": f"{tmp}/ledger.sqlite3"}
        gw = stack.enter_context(gateway_process(nginx_config(ng), env=env))
        chat = "/chat/completions"
        urls = {
            "json": {"nginx": ng.json + chat, "baseline": base_json + chat, "gateway": gw.url + "/v1" + chat},
            "stream": {"nginx": ng.sse + chat, "baseline": base_sse + chat, "gateway": gw.url + "/v1" + chat},
        }
        if args.litellm:
            lite = stack.enter_context(scenarios.litellm_proxy(args.litellm, ng))
            for mode in MODES:
                urls[mode]["litellm"] = lite.url + "/v1" + chat
        print(
            f"\nwrk -t1, {seconds:g} s per run, median of {args.rounds} rounds, auth on at the gateway "
            "(same request bytes everywhere)",
            flush=True,
        )
        rows = drive(urls, seconds, args.rounds)
        print(f"\nstreaming time to first byte, {rounds} requests per target, one connection each", flush=True)
        ttfb = measure_ttfb({k: urls["stream"][k] for k in ("nginx", "baseline", "gateway")},
                            request_body("stream"), HEADERS, rounds)  # fmt: skip
        if args.soak:
            print(f"\nsoak: {args.soak_requests} requests at c=64 through the same gateway", flush=True)
            soak, passed = scenarios.soak_lines(urls["json"]["gateway"], gw.proc.pid, args.soak_requests, 64)
            soak.append(f"soak_passed={int(passed)}")
    return rows, ttfb, soak


def main() -> None:
    use_this_checkout()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="2 s per wrk run, fewer rounds, 200 streams, no docs")
    parser.add_argument("--seconds", type=float, default=None, help="seconds per wrk run (default 3, quick 2)")
    parser.add_argument("--rounds", type=int, default=3, help="wrk rounds per target and concurrency (median counts)")
    parser.add_argument("--ttfb-rounds", type=int, default=None, help="streamed requests per target (default 300)")
    parser.add_argument("--litellm", default=None, help="LiteLLM's `litellm` command (from its own venv)")
    parser.add_argument("--soak", action="store_true", help="also the soak run")
    parser.add_argument("--soak-requests", type=int, default=20_000)
    parser.add_argument("--streams", type=int, default=None, help="open streams for the memory figure (1000)")
    parser.add_argument("--overload-seconds", type=float, default=None, help="overload run length (default 20)")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures to this file")
    parser.add_argument("--no-docs", action="store_true", help="do not rewrite docs/benchmarks.md")
    args = parser.parse_args()
    seconds = args.seconds or (2.0 if args.quick else 3.0)
    rounds = args.ttfb_rounds or (60 if args.quick else 300)
    streams = args.streams or (200 if args.quick else 1000)
    overload_seconds = args.overload_seconds or (10.0 if args.quick else 20.0)
    machine = machine_lines()
    print("\n".join(machine), flush=True)
    started = time.monotonic()
    rows, ttfb, soak = wrk_section(args, seconds, rounds)
    extra: dict[str, float] = {}
    if soak:
        extra["soak_passed"] = float(soak.pop().endswith("1"))
    print("\nswarm (swarm_bench.py)", flush=True)
    swarm = scenarios.swarm_lines(3 if args.quick else 7)
    print("\n".join(swarm), flush=True)
    print(f"\noverload (overload_bench.py, {overload_seconds:g} s, real llama.cpp + SmolLM2)", flush=True)
    overload = scenarios.overload_lines(overload_seconds, 16)
    print("\n".join(overload), flush=True)
    print(f"\nfootprint (footprint.py, {streams} open streams)", flush=True)
    foot, fp = scenarios.footprint_lines(3 if args.quick else 7, 3 if args.quick else 9, streams)
    print("\n".join(foot), flush=True)
    extra.update(idle_rss_mb=fp.idle_rss_mb, import_ms=fp.import_ms, ready_ms=fp.ready_ms)
    if fp.streams_opened == fp.streams:
        extra["streams_added_mb"] = fp.streams_added_mb * 1000 / fp.streams
    engine = scenarios.engine_lines()
    ttfb_lines = [
        f"TTFB {name:8}: median {median:.3f} ms  p90 {p90:.3f} ms  (added vs nginx {median - ttfb['nginx'][0]:+.3f} ms)"
        for name, (median, p90) in ttfb.items()
    ]
    report = [
        *machine, "", results_table(rows), "", *ttfb_lines, "", *soak, *([""] if soak else []),
        "swarm:", *swarm, "", "overload:", *overload, "", "footprint:", *foot, "", *engine, "",
        *verdict(rows, ttfb, extra),
    ]  # fmt: skip
    print("\n" + "\n".join(report[len(machine) :]))
    print(f"\n(total {time.monotonic() - started:.0f} s)")
    if args.json is not None:
        data = {"machine": machine, "rows": [asdict(r) for r in rows], "ttfb_ms": ttfb, "figures": extra}
        args.json.write_text(json.dumps(data, indent=2), encoding="utf-8")
    if not args.quick and not args.no_docs:
        write_section(DOCS, "run", "```text\n" + "\n".join(report) + "\n```")
        print(f"figures written to {DOCS}")


if __name__ == "__main__":
    main()
