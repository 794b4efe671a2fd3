"""What one finished request costs the observer (metrics, events ring, chart series, ledger queue):
median nanoseconds per ``begin`` + ``routed`` + ``finish``, ledger off vs. on (the write itself
happens on the ledger's thread). Prints figures; asserts nothing.

    PYTHONPATH=src python bench/observer_cost.py
"""

from __future__ import annotations

import logging
import statistics
import tempfile
import time
from pathlib import Path

from local_lattice.config import load
from local_lattice.observability.observer import Observer


def run(ledger: str, n: int = 20_000, rounds: int = 5) -> float:
    logging.getLogger("lattice.request").setLevel(logging.WARNING)  # the log line is measured apart
    observer = Observer(load(None, {"LATTICE_LEDGER_PATH": ledger}))
    per_round = []
    for _ in range(rounds):
        started = time.perf_counter_ns()
        for i in range(n):
            state = {"request_id": f"r{i}", "started": time.perf_counter()}
            rec = observer.begin(state, "/v1/chat/completions", "chat")
            observer.routed(rec, "m1", "local")
            rec.output_tokens = 20
            observer.finish(rec, 200)
        per_round.append((time.perf_counter_ns() - started) / n)
    observer.close()
    return statistics.median(per_round)


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        off = run("off")
        on = run(str(Path(tmp) / "ledger.sqlite3"))
    print(f"observer per request, ledger off: {off / 1000:.2f} µs")
    print(f"observer per request, ledger on:  {on / 1000:.2f} µs  (ratio {on / off:.2f})")


if __name__ == "__main__":
    main()
