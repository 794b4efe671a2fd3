"""A scripted OpenAI-compatible server run as its own process, one of a fleet serving the same model
id: it answers with its own name, can be slow before its first byte, and records every call it got —
whether it finished or its client hung up first — so tests can prove that a gateway closed a call.

    python -m tests.support.fleet_upstream --port P --name NAME [--model ID] [--delay SECONDS]
        [--owned-by llamacpp] [--busy-list]

``GET /_calls`` returns the record: ``started``, ``finished``, ``hung_up`` and the bodies seen.
Handlers are cancelled when their client hangs up (aiohttp's ``handler_cancellation``), which is what
lets ``hung_up`` be counted at all. With ``--busy-list`` its model list waits until no call is running,
as llama-cpp-python's server does (it lists models only between requests).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson
from aiohttp import web

from tests.support.procs import PYTHON, RunningProcess, free_port, run_process

FLEET_MODEL = "fleet-model"


@dataclass
class Calls:
    started: int = 0
    finished: int = 0
    hung_up: int = 0
    running: int = 0
    bodies: list[dict[str, Any]] = field(default_factory=list)


def _chunk(name: str, model: str, text: str, finish: str | None = None) -> bytes:
    delta = {"content": text} if text else {}
    body = {
        "id": f"{name}-1",
        "object": "chat.completion.chunk",
        "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }
    return b"data: " + orjson.dumps(body) + b"\n\n"


def build_app(name: str, model: str, delay: float, owned_by: str, busy_list: bool = False) -> web.Application:
    calls = Calls()
    idle = asyncio.Event()
    idle.set()

    async def models(request: web.Request) -> web.Response:
        if busy_list:
            await idle.wait()
        return web.json_response({"object": "list", "data": [{"id": model, "object": "model", "owned_by": owned_by}]})

    async def chat(request: web.Request) -> web.StreamResponse:
        body = await request.json()
        calls.started += 1
        calls.bodies.append(body)
        calls.running += 1
        idle.clear()
        try:
            if body.get("stream"):
                resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
                await resp.prepare(request)  # the head goes at once; the first chunk after the delay
                await asyncio.sleep(delay)
                await resp.write(_chunk(name, model, f"from {name}") + _chunk(name, model, "", "stop"))
                await resp.write(b"data: [DONE]\n\n")
                calls.finished += 1
                return resp
            await asyncio.sleep(delay)
        except asyncio.CancelledError:
            calls.hung_up += 1
            raise
        finally:
            calls.running -= 1
            if not calls.running:
                idle.set()
        calls.finished += 1
        message = {"role": "assistant", "content": f"from {name}"}
        return web.json_response(
            {
                "id": f"{name}-1",
                "object": "chat.completion",
                "model": model,
                "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3},
            }
        )

    async def record(request: web.Request) -> web.Response:
        return web.json_response(
            {"started": calls.started, "finished": calls.finished, "hung_up": calls.hung_up, "bodies": calls.bodies}
        )

    app = web.Application()
    app.router.add_get("/v1/models", models)
    app.router.add_post("/v1/chat/completions", chat)
    app.router.add_get("/_calls", record)
    return app


@contextlib.contextmanager
def fleet_upstream(
    name: str, *, delay: float = 0.0, port: int | None = None, owned_by: str = "scripted", busy_list: bool = False
) -> Iterator[RunningProcess]:
    """One fleet member as a process; ``url`` is its ``/v1`` base."""
    port = port or free_port()
    argv = [PYTHON, "-m", "tests.support.fleet_upstream", "--port", str(port), "--name", name, "--delay", str(delay),
            "--owned-by", owned_by, *(["--busy-list"] if busy_list else [])]  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    with run_process(argv, ready_url=base + "/v1/models", base_url=base + "/v1", timeout=30) as proc:
        yield proc


def calls_of(member: RunningProcess) -> dict[str, Any]:
    """What a fleet member has seen so far."""
    data: dict[str, Any] = httpx.get(member.url.removesuffix("/v1") + "/_calls", timeout=10).json()
    return data


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--name", required=True)
    parser.add_argument("--model", default=FLEET_MODEL)
    parser.add_argument("--delay", type=float, default=0.0)
    parser.add_argument("--owned-by", default="scripted")
    parser.add_argument("--busy-list", action="store_true")
    args = parser.parse_args()
    app = build_app(args.name, args.model, args.delay, args.owned_by, args.busy_list)
    web.run_app(app, host="127.0.0.1", port=args.port, handler_cancellation=True, print=None)


if __name__ == "__main__":
    main()
