"""How fast a request's life ends when it must: the real gateway in front of the upstream process
that takes its time and notes when its client hung up (``tests/support/hostile_upstream.py``).

- client gone → upstream closed: a raw-socket client sends a call the upstream would answer after
  4 s (non-streamed) or streams for 4 s, and closes after 0.3 s; the figure is the time from that
  close (test clock) to the upstream seeing the gateway hang up (its clock: ``time.monotonic``,
  the same on one machine);
- deadline → answer: a call with ``X-Lattice-Deadline-Ms`` to the same slow upstream; the figure
  is the time from the deadline to the client having the whole 504 (non-streamed) or the error
  event and ``[DONE]`` (a stream already under way).

Prints the median, p90 and max of ``--samples`` each (20 by default), and how many of them ended
as they should ("cut": the upstream saw the gateway hang up; the answer was the deadline's). With
``--src`` the gateway runs from another tree's ``src`` (an exported older one, for a before figure).

    python bench/lifecycle_bench.py [--samples 20] [--deadline-ms 500] [--src PATH]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.support.hostile_upstream import HostileUpstream, hostile_upstream
from tests.support.lifecycle import leave_after, send_and_read
from tests.support.servers import backends_toml, gateway_process

from bench.report import table
from bench.workload import use_this_checkout

CHAT = [{"role": "user", "content": "hi"}]
PATH = "/v1/chat/completions"


Sample = tuple[float, bool]  # seconds, and whether the request ended as it should


async def disconnect_to_close(upstream: HostileUpstream, url: str, stream: bool, tag: str) -> Sample:
    model = "drip-4000" if stream else "wait-4000"
    body = {"model": model, "messages": CHAT, "stream": stream, "user": tag}
    left = await leave_after(url, PATH, body, 0.3)
    for _ in range(1000):
        events = upstream.events(user=tag)
        if events and events[0].ended is not None:
            return events[0].ended - left.closed_at, events[0].hung_up
        await asyncio.sleep(0.01)
    raise AssertionError(f"the upstream call {tag} did not end")


async def deadline_to_answer(url: str, stream: bool, deadline_ms: int) -> Sample:
    body = {"model": "drip-4000" if stream else "wait-4000", "messages": CHAT, "stream": stream}
    sent = time.monotonic()
    raw = await send_and_read(url, PATH, body, {"X-Lattice-Deadline-Ms": str(deadline_ms)})
    done = time.monotonic()
    return done - (sent + deadline_ms / 1000), b"deadline_exceeded" in raw


async def sampled(samples: int, one: Callable[[int], Awaitable[Sample]]) -> list[Sample]:
    return [await one(i) for i in range(samples)]


def row(name: str, values: list[Sample]) -> list[str]:
    ms = sorted(v * 1000 for v, _ in values)
    p90 = ms[min(len(ms) - 1, int(0.9 * len(ms)))]
    cut = sum(ok for _, ok in values)
    return [name, str(len(ms)), str(cut), f"{statistics.median(ms):.1f}", f"{p90:.1f}", f"{ms[-1]:.1f}"]


async def measure(upstream: HostileUpstream, url: str, samples: int, deadline_ms: int) -> list[list[str]]:
    rows = []
    for stream in (False, True):
        kind = "stream" if stream else "non-stream"
        gone = await sampled(samples, lambda i, s=stream, k=kind: disconnect_to_close(upstream, url, s, f"{k}-{i}"))
        rows.append(row(f"client gone -> upstream closed ({kind})", gone))
    for stream in (False, True):
        kind = "stream" if stream else "non-stream"
        late = await sampled(samples, lambda _, s=stream: deadline_to_answer(url, s, deadline_ms))
        rows.append(row(f"deadline -> answer ({kind})", late))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, default=20)
    parser.add_argument("--deadline-ms", type=int, default=500)
    parser.add_argument("--src", type=Path, default=None, help="run the gateway from this tree's src")
    args = parser.parse_args()
    use_this_checkout()
    env = {"PYTHONPATH": str(args.src.resolve())} if args.src else None
    with (
        hostile_upstream(["wait-4000", "drip-4000"]) as upstream,
        gateway_process(backends_toml([("hostile", upstream.url)]), env=env) as gateway,
    ):
        rows = asyncio.run(measure(upstream, gateway.url, args.samples, args.deadline_ms))
    print(table(["figure", "n", "cut", "median ms", "p90 ms", "max ms"], rows))


if __name__ == "__main__":
    main()
