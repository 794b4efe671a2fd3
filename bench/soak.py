"""The soak run: many requests at high concurrency through the full stack, watching for errors and growth.

    python bench/soak.py [--requests 20000] [--connections 64] [--mode json|stream]

The gateway (API key on, the ledger in a temporary file, the timing log line on) in front of a real
nginx; ``wrk`` sends ``--requests`` chat completions over ``--connections`` connections and stops.
A thread samples the gateway's RSS every 0.2 s. Passes when no request failed and the peak RSS of
the second half of the run is within 10 % of the first half's peak.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

# Run as a script from any directory: the checkout (bench/, tests/support) and its src/ come first.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.support.nginx import nginx_upstream
from tests.support.servers import gateway_process

from bench.load import WrkResult, run_wrk
from bench.procstat import rss_bytes
from bench.workload import HEADERS, nginx_config, request_body, use_this_checkout

MB = 1024 * 1024
GROWTH_LIMIT = 1.10


@dataclass(frozen=True, slots=True)
class Soak:
    result: WrkResult
    mode: str
    connections: int
    samples: list[tuple[float, float]]  # (seconds since start, RSS MB)

    def halves(self) -> tuple[list[float], list[float]]:
        mid = self.samples[-1][0] / 2 if self.samples else 0.0
        first = [rss for t, rss in self.samples if t <= mid]
        second = [rss for t, rss in self.samples if t > mid]
        return first, second

    @property
    def growth(self) -> float:
        first, second = self.halves()
        return max(second) / max(first) if first and second else float("nan")

    @property
    def passed(self) -> bool:
        return self.result.errors == 0 and self.growth <= GROWTH_LIMIT

    def lines(self) -> list[str]:
        first, second = self.halves()
        r = self.result
        return [
            f"soak {self.mode}: {r.requests} requests at c={self.connections} in {r.seconds:.1f} s "
            f"({r.rps:.0f} req/s, p50 {r.p50_ms:.2f} ms, p99 {r.p99_ms:.2f} ms), errors {r.errors}",
            f"gateway RSS: first half median {statistics.median(first):.1f} MB peak {max(first):.1f} MB; "
            f"second half median {statistics.median(second):.1f} MB peak {max(second):.1f} MB "
            f"-> peak ratio {self.growth:.3f} (limit {GROWTH_LIMIT:.2f})",
            f"soak verdict: {'PASS' if self.passed else 'FAIL'} (0 errors and second-half peak within 10 %)",
        ]


def sample_rss(pid: int, stop: threading.Event, into: list[tuple[float, float]], every: float = 0.2) -> None:
    started = time.monotonic()
    while not stop.is_set():
        into.append((time.monotonic() - started, rss_bytes(pid) / MB))
        stop.wait(every)


def soak_against(url: str, pid: int, requests: int, connections: int, mode: str) -> Soak:
    samples: list[tuple[float, float]] = []
    stop = threading.Event()
    sampler = threading.Thread(target=sample_rss, args=(pid, stop, samples), daemon=True)
    sampler.start()
    try:
        # The time bound only guards against a hang: the request budget ends the run.
        result = run_wrk(url, request_body(mode), HEADERS, connections, 600, max_requests=requests)
    finally:
        stop.set()
        sampler.join(5)
    return Soak(result, mode, connections, samples)


def soak(requests: int, connections: int, mode: str = "json") -> Soak:
    with contextlib.ExitStack() as stack:
        tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="lattice-soak-"))
        ng = stack.enter_context(nginx_upstream())
        env = {"LATTICE_LEDGER_PATH": f"{tmp}/ledger.sqlite3"}
        gw = stack.enter_context(gateway_process(nginx_config(ng), env=env))
        url = gw.url + "/v1/chat/completions"
        run_wrk(url, request_body(mode), HEADERS, connections, 1)  # warm-up, not counted
        return soak_against(url, gw.proc.pid, requests, connections, mode)


def main() -> None:
    use_this_checkout()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--mode", choices=("json", "stream"), default="json")
    args = parser.parse_args()
    result = soak(args.requests, args.connections, args.mode)
    print("\n".join(result.lines()))
    sys.exit(0 if result.passed else 1)


if __name__ == "__main__":
    main()
