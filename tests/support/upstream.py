"""A scripted OpenAI-compatible HTTP server for error paths that real model servers can't be made
to produce on demand (5xx, garbage, slow streams). It is a real server on a loopback socket, run
in a background thread (``scripted_upstream``, which records what it saw) or as a process of its
own (``python -m tests.support.upstream --port P --models a,b``, ``scripted_upstream_process``);
the model name picks the behaviour. Besides the names in ``MODELS``: ``empty`` answers with empty
content, ``echo`` answers with the last message's text, ``judge-b`` is a judge that always names
position B (a pure position bias), ``slow-ok`` answers "ok" after 0.3 s, ``hold`` answers after 20 s
or ends when its client leaves (both count calls at once in ``Recorder.most_at_once``), any other
name answers "ok"."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from aiohttp import web

from tests.support.procs import PYTHON, RunningProcess, free_port, run_process

ROOT = Path(__file__).resolve().parents[2]

MODELS = [
    "ok-model",
    "embed-model",
    "boom-500",
    "garbage",
    "bad-request",
    "slow-stream",
    "die-mid-stream",
    "rate-limited",
    "hang",
    "slow-ok",
    "hold",
]


@dataclass
class Recorder:
    headers: list[dict[str, str]] = field(default_factory=list)
    bodies: list[dict[str, Any]] = field(default_factory=list)
    disconnects: int = 0
    stream_started: threading.Event = field(default_factory=threading.Event)
    stream_closed: threading.Event = field(default_factory=threading.Event)
    at_once: int = 0  # calls of slow-ok and hold running now
    most_at_once: int = 0
    held: threading.Event = field(default_factory=threading.Event)  # a hold call is running


async def _counted(rec: Recorder, request: web.Request, seconds: float) -> None:
    """Wait ``seconds`` (or until the client leaves) counting calls at once."""
    rec.at_once += 1
    rec.most_at_once = max(rec.most_at_once, rec.at_once)
    try:
        for _ in range(round(seconds / 0.05)):
            if request.transport is None or request.transport.is_closing():
                return
            await asyncio.sleep(0.05)
    finally:
        rec.at_once -= 1


def _chunk(text: str) -> bytes:
    body = {
        "object": "chat.completion.chunk",
        "model": "slow-stream",
        "choices": [{"index": 0, "delta": {"content": text}}],
    }
    return b"data: " + orjson.dumps(body) + b"\n\n"


def build_app(rec: Recorder, listed: list[str]) -> web.Application:
    async def models(request: web.Request) -> web.Response:
        return web.json_response({"object": "list", "data": [{"id": m, "object": "model"} for m in listed]})

    async def chat(request: web.Request) -> web.StreamResponse:
        body = await request.json()
        rec.headers.append(dict(request.headers))
        rec.bodies.append(body)
        model = body.get("model")
        if model == "boom-500":
            return web.json_response({"error": {"message": "kaboom"}}, status=500)
        if model == "garbage":
            return web.Response(text="<html>not json</html>", content_type="text/html")
        if model == "bad-request":
            return web.json_response({"error": {"message": "max_tokens is too large for me"}}, status=400)
        if model == "rate-limited":
            return web.json_response({"error": {"message": "slow down"}}, status=429)
        if model == "hang":
            await asyncio.sleep(5)  # longer than the time limits the tests set: theirs must end the call
        if model == "slow-ok":
            await _counted(rec, request, 0.3)
        if model == "hold":
            rec.held.set()
            await _counted(rec, request, 20.0)
        if model in ("slow-stream", "die-mid-stream") and body.get("stream"):
            resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
            await resp.prepare(request)
            rec.stream_started.set()
            try:
                for i in range(100):
                    await resp.write(_chunk(f"t{i} "))
                    if model == "die-mid-stream" and i == 2:
                        assert request.transport is not None
                        request.transport.close()
                        return resp
                    await asyncio.sleep(0.1)
                await resp.write(b"data: [DONE]\n\n")
            except (ConnectionResetError, asyncio.CancelledError):
                rec.disconnects += 1
                raise
            finally:
                rec.stream_closed.set()
            return resp
        if body.get("stream"):
            resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
            await resp.prepare(request)
            await resp.write(_chunk("ok") + b"data: [DONE]\n\n")
            return resp
        content = "ok"
        if model == "empty":
            content = ""
        elif model == "echo":
            content = str(body["messages"][-1].get("content", ""))
        elif model == "judge-b":
            content = '{"winner": "B", "reason": "B reads best"}'
        message = {"role": "assistant", "content": content}
        usage = {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}
        answer = web.json_response(
            {
                "id": "x",
                "object": "chat.completion",
                "model": model,
                "choices": [{"index": 0, "message": message}],
                "usage": usage,
            }
        )
        # Servers behind load balancers set cookies: a gateway must never carry them to later calls.
        answer.set_cookie("upstream_session", "one-clients-session")
        return answer

    async def completions(request: web.Request) -> web.Response:
        body = await request.json()
        rec.headers.append(dict(request.headers))
        rec.bodies.append(body)
        usage = {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}
        choice = {"index": 0, "text": "ok", "finish_reason": "stop"}
        if body.get("stream"):
            resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
            await resp.prepare(request)
            chunk = {"object": "text_completion", "model": body.get("model"), "choices": [choice]}
            await resp.write(b"data: " + orjson.dumps(chunk) + b"\n\ndata: [DONE]\n\n")
            return resp
        return web.json_response(
            {"id": "c", "object": "text_completion", "model": body.get("model"), "choices": [choice], "usage": usage}
        )

    async def embeddings(request: web.Request) -> web.Response:
        body = await request.json()
        rec.headers.append(dict(request.headers))
        rec.bodies.append(body)
        item = {"object": "embedding", "index": 0, "embedding": [0.0, 1.0]}
        return web.json_response({"object": "list", "model": body.get("model"), "data": [item]})

    app = web.Application()
    app.router.add_get("/v1/models", models)
    app.router.add_post("/v1/chat/completions", chat)
    app.router.add_post("/v1/completions", completions)
    app.router.add_post("/v1/embeddings", embeddings)
    return app


@contextlib.contextmanager
def serve_in_thread(app: web.Application, *, cancel_on_hangup: bool = False, backlog: int = 128) -> Iterator[str]:
    """Run an aiohttp app on a free loopback port in a background thread; yield its root URL.
    ``cancel_on_hangup`` cancels a handler whose client hung up (to time hang-ups)."""
    port = free_port()
    loop = asyncio.new_event_loop()
    runner = web.AppRunner(app, handle_signals=False, handler_cancellation=cancel_on_hangup)
    started = threading.Event()

    def serve() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(runner.setup())
        loop.run_until_complete(web.TCPSite(runner, "127.0.0.1", port, backlog=backlog).start())
        started.set()
        loop.run_forever()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    started.wait(10)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        asyncio.run_coroutine_threadsafe(runner.shutdown(), loop).result(30)
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


@contextlib.contextmanager
def scripted_upstream(models: list[str] | None = None) -> Iterator[tuple[str, Recorder]]:
    """Yield ``(base_url_with_v1, recorder)`` while the server runs in a thread."""
    rec = Recorder()
    with serve_in_thread(build_app(rec, models or MODELS)) as root:
        yield root + "/v1", rec


@contextlib.contextmanager
def scripted_upstream_process(models: list[str]) -> Iterator[RunningProcess]:
    """The scripted server as a process of its own, listing ``models``; ``url`` is its ``/v1`` base."""
    port = free_port()
    argv = [PYTHON, "-m", "tests.support.upstream", "--port", str(port), "--models", ",".join(models)]
    base = f"http://127.0.0.1:{port}"
    with run_process(argv, ready_url=base + "/v1/models", base_url=base + "/v1", cwd=str(ROOT)) as proc:
        yield proc


def main() -> None:
    parser = argparse.ArgumentParser(description="A scripted OpenAI-compatible upstream for tests.")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--models", default=",".join(MODELS))
    args = parser.parse_args()
    app = build_app(Recorder(), [m for m in args.models.split(",") if m])
    web.run_app(app, host="127.0.0.1", port=args.port, print=None, handler_cancellation=True)


if __name__ == "__main__":
    main()
