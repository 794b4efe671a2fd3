"""Swarm timing over real HTTP: a scripted upstream (in its own thread and event loop) answers model
``m-<ms>`` after exactly that many milliseconds and records when each request's connection closed.

Prints, as medians over several runs:
- fanout of 3 independent members: wall time / slowest member (target <= 1.15)
- first-success: wall time / fastest member (target <= 1.1), and how long after the winner returned
  the losers' upstream connections were closed (target <= 100 ms)

Run: PYTHONPATH=src:. python bench/swarm_bench.py [--runs 7]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections.abc import Iterator
from contextlib import contextmanager

from aiohttp import web
from tests.support.upstream import serve_in_thread

from local_lattice.config import Config
from local_lattice.gateway import Gateway
from local_lattice.swarm.runner import Job, SwarmRunner
from local_lattice.swarm.specs import AgentSpec, CallContext

MODELS = ["m-200", "m-300", "m-500", "m-600", "m-700", "m-900"]
MESSAGES = [{"role": "user", "content": "hi"}]


def build_app(closed: dict[str, float]) -> web.Application:
    async def models(request: web.Request) -> web.Response:
        return web.json_response({"object": "list", "data": [{"id": m, "object": "model"} for m in MODELS]})

    async def chat(request: web.Request) -> web.Response:
        body = await request.json()
        model = str(body["model"])
        tag = str(body.get("user", model))
        try:
            await asyncio.sleep(int(model.split("-")[1]) / 1000)
            message = {"role": "assistant", "content": f"answer from {model}"}
            usage = {"prompt_tokens": 1, "completion_tokens": 3, "total_tokens": 4}
            choices = [{"index": 0, "message": message, "finish_reason": "stop"}]
            return web.json_response({"object": "chat.completion", "model": model, "usage": usage, "choices": choices})
        finally:
            closed[tag] = time.perf_counter()

    app = web.Application()
    app.router.add_get("/v1/models", models)
    app.router.add_post("/v1/chat/completions", chat)
    return app


@contextmanager
def upstream(closed: dict[str, float]) -> Iterator[str]:
    # A client that hangs up cancels the handler, so "closed" is the hang-up time.
    with serve_in_thread(build_app(closed), cancel_on_hangup=True) as root:
        yield root + "/v1"


def jobs(models: list[str], run: int) -> list[Job]:
    # ``user`` tags each upstream request so its close time can be found.
    return [Job(f"a{i}", AgentSpec(m), MESSAGES, {"user": f"r{run}-a{i}"}) for i, m in enumerate(models)]


async def bench(url: str, closed: dict[str, float], runs: int) -> None:
    config = Config.model_validate({"backends": [{"name": "up", "url": url}]})
    gateway = Gateway.from_config(config)
    runner = SwarmRunner(gateway, config.swarm)
    await runner.gather(jobs(["m-200"], -1), CallContext())  # warm the pool and the model list
    fan, first, close_lag = [], [], []
    for run in range(runs):
        started = time.perf_counter()
        rows = await runner.gather(jobs(["m-300", "m-500", "m-700"], run), CallContext())
        assert all(r.ok for r in rows)
        fan.append((time.perf_counter() - started) / 0.700)

        started = time.perf_counter()
        winner, rows = await runner.first_success(jobs(["m-900", "m-200", "m-600"], 100 + run), CallContext())
        returned = time.perf_counter()
        assert winner is not None
        assert winner.model == "m-200"
        first.append((returned - started) / 0.200)
        await asyncio.sleep(0.05)  # let the upstream thread record the hang-ups
        answered = closed[f"r{100 + run}-a1"]  # when the winner's upstream finished its answer
        close_lag.append(max(closed[f"r{100 + run}-a{i}"] - answered for i in (0, 2)) * 1000)
    await gateway.aclose()
    print(f"runs: {runs}")
    print(
        f"fanout (300/500/700 ms members): wall / slowest  median {statistics.median(fan):.3f}  "
        f"max {max(fan):.3f}  (target <= 1.15)"
    )
    print(
        f"first-success (200/600/900 ms):  wall / fastest  median {statistics.median(first):.3f}  "
        f"max {max(first):.3f}  (target <= 1.10)"
    )
    print(
        "first-success losers' upstream connections closed after the winner's upstream answered: "
        f"median {statistics.median(close_lag):.1f} ms  max {max(close_lag):.1f} ms  (target <= 100 ms)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    closed: dict[str, float] = {}
    with upstream(closed) as url:
        asyncio.run(bench(url, closed, args.runs))


if __name__ == "__main__":
    main()
