"""Overload benchmark: the real gateway (one call at a time per model, a small queue) in front of
llama.cpp's server with the real SmolLM2, driven by open-loop arrivals above its capacity.

Prints accepted/rejected (by kind), p50/p95 queue wait by priority, and how close each 429's
Retry-After (and its unrounded estimate) came to the real time until a slot freed — the next
moment an admitted call finished after the rejection.

    PYTHONPATH=src python bench/overload_bench.py [--overload 3] [--duration 60] [--max-tokens 64]
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import random
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.support.models import SMOLLM2_ID
from tests.support.servers import gateway_process, llama_server

from bench.workload import use_this_checkout

PRIORITIES = (-5, 0, 5)
KEYS = ("alpha", "beta", "gamma")


@dataclass
class Sample:
    priority: int
    sent: float
    done: float
    status: int
    queue_ms: float | None
    retry_after: int | None
    estimate: float | None
    kind: str | None


async def call(client: httpx.AsyncClient, priority: int, key: str, max_tokens: int, t0: float) -> Sample:
    body = {
        "model": SMOLLM2_ID,
        "messages": [{"role": "user", "content": "Count from 1 to 300, separated by commas."}],
        "max_tokens": max_tokens,
        "temperature": 0,
        "queue": {"priority": priority},
    }
    sent = time.perf_counter() - t0
    reply = await client.post("/v1/chat/completions", json=body, headers={"Authorization": f"Bearer {key}"})
    done = time.perf_counter() - t0
    queue_ms = reply.headers.get("X-Lattice-Queue-Ms")
    waited = None if queue_ms is None else float(queue_ms)
    sample = Sample(priority, sent, done, reply.status_code, waited, None, None, None)
    if reply.status_code == 429:
        error = reply.json()["error"]
        sample.kind = error["type"]
        sample.retry_after = int(reply.headers["Retry-After"])
        sample.estimate = float(error["retry"]["estimated_wait_sec"])
    return sample


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def report(samples: list[Sample], service: float) -> None:
    ok = [s for s in samples if s.status == 200]
    rejected = [s for s in samples if s.status == 429]
    other = [s for s in samples if s.status not in (200, 429)]
    print(f"service time of one call (calibration): {service:.2f} s")
    print(f"requests {len(samples)}  accepted {len(ok)}  rejected {len(rejected)}  other {len(other)}")
    kinds: dict[str, int] = {}
    for s in rejected:
        kinds[s.kind or "?"] = kinds.get(s.kind or "?", 0) + 1
    print("rejected by kind: " + ", ".join(f"{k}={v}" for k, v in sorted(kinds.items())))
    print("queue wait of accepted calls (ms):")
    for p in sorted(PRIORITIES, reverse=True):
        waits = [s.queue_ms for s in ok if s.priority == p and s.queue_ms is not None]
        n_rej = sum(1 for s in rejected if s.priority == p)
        print(
            f"  priority {p:+d}: n={len(waits):3d} p50={pct(waits, 0.5):8.0f} p95={pct(waits, 0.95):8.0f}"
            f"  rejected={n_rej}"
        )
    finishes = sorted(s.done for s in ok)
    errors: list[float] = []
    est_errors: list[float] = []
    ratios: list[float] = []
    for s in rejected:
        i = bisect.bisect_right(finishes, s.done)
        if i == len(finishes) or s.retry_after is None or s.estimate is None:
            continue
        real = finishes[i] - s.done
        errors.append(s.retry_after - real)
        est_errors.append(s.estimate - real)
        ratios.append(s.retry_after / max(real, 1e-3))
    if errors:
        print(f"Retry-After vs real time until a slot freed (n={len(errors)}):")
        print(
            f"  advice - real (s): median {statistics.median(errors):+.2f}"
            f"  p95 |err| {pct([abs(e) for e in errors], 0.95):.2f}"
        )
        print(
            f"  unrounded estimate - real (s): median {statistics.median(est_errors):+.2f}  "
            f"p95 |err| {pct([abs(e) for e in est_errors], 0.95):.2f}"
        )
        within = sum(1 for e in errors if -1.0 <= e <= 1.0) / len(errors)
        print(f"  advice within ±1 s: {within:.0%}   median advice/real ratio {statistics.median(ratios):.2f}")


async def drive(url: str, overload: float, duration: float, max_tokens: int, seed: int) -> None:
    rng = random.Random(seed)
    async with httpx.AsyncClient(base_url=url, timeout=None, limits=httpx.Limits(max_connections=500)) as client:
        t0 = time.perf_counter()
        await call(client, 0, "calibrate", max_tokens, t0)  # warm-up: the first call pays for loading
        timed = [await call(client, 0, "calibrate", max_tokens, t0) for _ in range(3)]
        service = statistics.median(c.done - c.sent for c in timed)
        rate = overload / service
        tasks: list[asyncio.Task[Sample]] = []
        t0 = time.perf_counter()
        while time.perf_counter() - t0 < duration:
            priority, key = rng.choice(PRIORITIES), rng.choice(KEYS)
            tasks.append(asyncio.create_task(call(client, priority, key, max_tokens, t0)))
            await asyncio.sleep(rng.expovariate(rate))
        samples = await asyncio.gather(*tasks)
    print(f"open-loop arrivals at {overload:.1f}x capacity ({rate:.2f}/s) for {duration:.0f} s")
    print(f"max_tokens={max_tokens}, one call at a time per model")
    report(list(samples), service)


def main() -> None:
    use_this_checkout()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--overload", type=float, default=3.0, help="arrival rate in multiples of capacity")
    parser.add_argument("--duration", type=float, default=60.0)
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--queue-per-model", type=int, default=4)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    env = {"MLX_PER_MODEL_INFLIGHT_CAP": "1", "MLX_QUEUE_MAX_PER_MODEL": str(args.queue_per_model)}
    with llama_server() as upstream:
        toml = f'[[backends]]\nname = "llama"\ntype = "openai"\nurl = "{upstream.url}"\n'
        with gateway_process(toml, env=env) as gateway:
            asyncio.run(drive(gateway.url, args.overload, args.duration, args.max_tokens, args.seed))


if __name__ == "__main__":
    main()
