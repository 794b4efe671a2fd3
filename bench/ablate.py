"""Before/after in one run: several gateway variants side by side, with the bare passthrough as yardstick.

    python bench/ablate.py --variant before=/tmp/old/src --variant after=src \\
        --variant "no-ledger=src:LATTICE_LEDGER_PATH=off" [--mode json] [--connections 16] [--rounds 5]

A variant is ``name=SRC[:ENV=VALUE[,ENV=VALUE...]]``: the gateway runs from the ``local_lattice``
package under ``SRC`` (an exported older tree, or this checkout's ``src``) with the extra
environment. Every variant runs at once in front of one nginx; ``wrk`` runs are interleaved round by
round (targets in a rotated order each round) so the shared machine's drift hits all alike. Prints
the median req/s, p50 and CPU time per request (the steadiest figure on a loaded machine) per
variant and its ratio to the passthrough and to the first variant.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import tempfile
from pathlib import Path

# Run as a script from any directory: the checkout (bench/, tests/support) and its src/ come first.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.support.nginx import nginx_upstream
from tests.support.servers import gateway_process

from bench.baseline_passthrough import passthrough_server
from bench.load import WrkResult, run_wrk
from bench.procstat import cpu_seconds
from bench.report import table
from bench.workload import HEADERS, nginx_config, request_body


def parse_variant(text: str) -> tuple[str, Path, dict[str, str]]:
    name, _, rest = text.partition("=")
    src, _, env_text = rest.partition(":")
    env = dict(pair.split("=", 1) for pair in env_text.split(",") if pair)
    return name, Path(src).resolve(), env


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variant", action="append", required=True, help="name=SRC[:ENV=VALUE,...]")
    parser.add_argument("--mode", choices=("json", "stream"), default="json")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    variants = [parse_variant(v) for v in args.variant]
    body = request_body(args.mode)
    results: dict[str, list[WrkResult]] = {"baseline": [], **{name: [] for name, _, _ in variants}}
    cpu_us: dict[str, list[float]] = {name: [] for name in results}
    pids: dict[str, int] = {}
    with contextlib.ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="lattice-ablate-")))
        ng = stack.enter_context(nginx_upstream())
        upstream = ng.json if args.mode == "json" else ng.sse
        started: list[int] = []
        urls = {"baseline": stack.enter_context(passthrough_server(upstream, pids=started)) + "/chat/completions"}
        pids["baseline"] = started[0]
        for name, src, extra in variants:
            env = {"PYTHONPATH": str(src), "LATTICE_LEDGER_PATH": str(tmp / f"{name}.sqlite3"), **extra}
            gw = stack.enter_context(gateway_process(nginx_config(ng), env=env))
            urls[name] = gw.url + "/v1/chat/completions"
            pids[name] = gw.proc.pid
        names = list(urls)
        for name in names:  # warm-up, not counted
            run_wrk(urls[name], body, HEADERS, args.connections, 1)
        for round_ in range(args.rounds):
            order = names[round_ % len(names) :] + names[: round_ % len(names)]
            for name in order:
                cpu = cpu_seconds(pids[name])
                result = run_wrk(urls[name], body, HEADERS, args.connections, args.seconds)
                results[name].append(result)
                cpu_us[name].append((cpu_seconds(pids[name]) - cpu) * 1e6 / max(result.requests, 1))
            line = "  ".join(f"{n} {results[n][-1].rps:.0f} ({cpu_us[n][-1]:.0f} us)" for n in names)
            print(f"round {round_ + 1}: {line}", flush=True)
    rps = {n: statistics.median(r.rps for r in rs) for n, rs in results.items()}
    p50 = {n: statistics.median(r.p50_ms for r in rs) for n, rs in results.items()}
    cpu = {n: statistics.median(v) for n, v in cpu_us.items()}
    first = variants[0][0]
    rows = [
        [
            n,
            f"{rps[n]:.0f}",
            f"{p50[n]:.3f}",
            f"{cpu[n]:.0f}",
            f"{cpu[n] / cpu[first]:.2f}",
            f"{rps[n] / rps['baseline']:.2f}",
            f"{rps[n] / rps[first]:.2f}",
            str(sum(r.errors for r in results[n])),
        ]
        for n in names
    ]
    print(f"\n{args.mode}, c={args.connections}, median of {args.rounds} x {args.seconds:g} s")
    print(
        table(
            ["variant", "req/s", "p50 ms", "cpu us/req", f"cpu x {first}", "x baseline", f"x {first}", "errors"], rows
        )
    )


if __name__ == "__main__":
    main()
