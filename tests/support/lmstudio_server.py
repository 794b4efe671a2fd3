"""A scripted LM Studio: a real server process that speaks what LM Studio speaks to a gateway.

``/v1/models`` (OpenAI's list, every downloaded model), ``/api/v0/models`` (LM Studio's own list: type,
publisher, arch, quantization, ``state`` loaded / not-loaded, context lengths), and ``/v1/chat/completions``,
``/v1/completions``, ``/v1/embeddings``. A call to a model that is not loaded loads it first, as LM
Studio's just-in-time loading does. Answers are deterministic (``[<model>] <the last user message>``,
cut to ``max_tokens`` words, and then ``finish_reason: length``), streamed a word per event.
``--old`` plays an LM Studio without ``/api/v0`` (404), the way the original's client saw older builds.

For tests it also answers ``GET /__script__/stats`` (per model: calls, in flight now, the most in
flight at once, the request headers seen, just-in-time loads) and ``POST /__script__/state``
(``{"id", "state"}``: load or unload a model behind the gateway's back). Start it with
``lmstudio_server(models)``; run it by hand with ``python -m tests.support.lmstudio_server --port P
--models FILE``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Model:
    id: str
    type: str = "llm"
    state: str = "loaded"
    publisher: str = "lmstudio-community"
    arch: str = "qwen2"
    quantization: str = "Q4_K_M"
    compatibility_type: str = "gguf"
    max_context_length: int = 32768
    delay: float = 0.0  # seconds each call takes before answering (and between streamed words)
    calls: int = 0
    in_flight: int = 0
    max_in_flight: int = 0

    def native(self) -> dict[str, Any]:
        item: dict[str, Any] = {
            "id": self.id,
            "object": "model",
            "type": self.type,
            "publisher": self.publisher,
            "arch": self.arch,
            "compatibility_type": self.compatibility_type,
            "quantization": self.quantization,
            "state": self.state,
            "max_context_length": self.max_context_length,
        }
        if self.state == "loaded":
            item["loaded_context_length"] = min(self.max_context_length, 8192)
        return item


@dataclass
class Studio:
    models: dict[str, Model]
    old: bool = False
    jit_loads: list[str] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)

    def stats(self) -> dict[str, Any]:
        per_model = {m.id: {"calls": m.calls, "in_flight": m.in_flight, "max_in_flight": m.max_in_flight}
                     for m in self.models.values()}  # fmt: skip
        return {"models": per_model, "jit_loads": self.jit_loads, "headers": self.headers[-50:]}


def _error(status: int, message: str) -> web.Response:
    body = {"error": {"message": message, "type": "invalid_request_error", "param": "model", "code": None}}
    return web.json_response(body, status=status)


def _last_user_text(body: dict[str, Any]) -> str:
    if isinstance(body.get("prompt"), str):
        return str(body["prompt"])
    for message in reversed(body.get("messages") or []):
        if isinstance(message, dict) and message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, list):
                return " ".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
            return str(content or "")
    return ""


def _words(model: Model, body: dict[str, Any]) -> tuple[list[str], str]:
    """The answer's words and its finish reason (``length`` when ``max_tokens`` cut it)."""
    limit = body.get("max_tokens") if isinstance(body.get("max_tokens"), int) else 64
    words = [f"[{model.id}]", *(_last_user_text(body).split() or ["(nothing)"])]
    kept = words[: max(1, limit)]
    return kept, "length" if len(kept) < len(words) else "stop"


def build_app(studio: Studio) -> web.Application:
    async def v1_models(request: web.Request) -> web.Response:
        data = [{"id": m.id, "object": "model", "owned_by": "organization_owner"} for m in studio.models.values()]
        return web.json_response({"object": "list", "data": data})

    async def v0_models(request: web.Request) -> web.Response:
        if studio.old:
            return web.json_response({"error": "Unexpected endpoint or method. (GET /api/v0/models)"}, status=404)
        return web.json_response({"object": "list", "data": [m.native() for m in studio.models.values()]})

    async def generate(request: web.Request) -> web.StreamResponse:
        body = await request.json()
        studio.headers.append(dict(request.headers))
        model = studio.models.get(str(body.get("model")))
        if model is None:
            return _error(404, f"model '{body.get('model')}' not found")
        if model.state != "loaded":
            studio.jit_loads.append(model.id)
            model.state = "loaded"
        model.calls += 1
        model.in_flight += 1
        model.max_in_flight = max(model.max_in_flight, model.in_flight)
        try:
            await asyncio.sleep(model.delay)
            return await answer(request, model, body)
        finally:
            model.in_flight -= 1

    async def answer(request: web.Request, model: Model, body: dict[str, Any]) -> web.StreamResponse:
        words, finish = _words(model, body)
        chat = request.path.endswith("/chat/completions")
        usage = {"prompt_tokens": len(_last_user_text(body).split()), "completion_tokens": len(words)}
        usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
        kind = "chat.completion" if chat else "text_completion"
        if not body.get("stream"):
            text = " ".join(words)
            choice = (
                {"index": 0, "message": {"role": "assistant", "content": text}} if chat else {"index": 0, "text": text}
            )
            choice["finish_reason"] = finish
            return web.json_response({"id": "chatcmpl-lms", "object": kind, "model": model.id, "choices": [choice],
                                      "usage": usage})  # fmt: skip
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        for index, word in enumerate(words):
            piece = word if index == 0 else " " + word
            delta = {"index": 0, "delta": {"content": piece}} if chat else {"index": 0, "text": piece}
            event = {"id": "chatcmpl-lms", "object": kind + ".chunk" if chat else kind, "model": model.id,
                     "choices": [{**delta, "finish_reason": None}]}  # fmt: skip
            await resp.write(b"data: " + json.dumps(event).encode() + b"\n\n")
            await asyncio.sleep(model.delay / 4)
        final = {"id": "chatcmpl-lms", "object": kind + ".chunk" if chat else kind, "model": model.id,
                 "choices": [{"index": 0, "delta": {}, "finish_reason": finish}], "usage": usage}  # fmt: skip
        await resp.write(b"data: " + json.dumps(final).encode() + b"\n\ndata: [DONE]\n\n")
        return resp

    async def embeddings(request: web.Request) -> web.Response:
        body = await request.json()
        model = studio.models.get(str(body.get("model")))
        if model is None or model.type != "embeddings":
            return _error(400, f"model '{body.get('model')}' is not an embedding model")
        inputs = body.get("input") if isinstance(body.get("input"), list) else [body.get("input")]
        data = [{"object": "embedding", "index": i, "embedding": [float(len(str(t))), 1.0, 0.5]}
                for i, t in enumerate(inputs)]  # fmt: skip
        return web.json_response({"object": "list", "data": data, "model": model.id, "usage": {"prompt_tokens": 1}})

    async def stats(request: web.Request) -> web.Response:
        return web.json_response(studio.stats())

    async def set_state(request: web.Request) -> web.Response:
        body = await request.json()
        studio.models[body["id"]].state = body["state"]
        return web.json_response({"ok": True})

    app = web.Application()
    app.router.add_get("/v1/models", v1_models)
    app.router.add_get("/api/v0/models", v0_models)
    app.router.add_post("/v1/chat/completions", generate)
    app.router.add_post("/v1/completions", generate)
    app.router.add_post("/v1/embeddings", embeddings)
    app.router.add_get("/__script__/stats", stats)
    app.router.add_post("/__script__/state", set_state)
    return app


@contextlib.contextmanager
def lmstudio_server(models: list[dict[str, Any]], *, old: bool = False) -> Iterator[Any]:
    """Start the scripted LM Studio as its own process; yields it (``url`` is its root, no ``/v1``)."""
    from tests.support.procs import PYTHON, free_port, run_process

    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as handle:
        json.dump(models, handle)
    port = free_port()
    argv = [PYTHON, "-m", "tests.support.lmstudio_server", "--port", str(port), "--models", handle.name]
    base = f"http://127.0.0.1:{port}"
    try:
        with run_process([*argv, *(["--old"] if old else [])], ready_url=base + "/v1/models", base_url=base,
                         cwd=str(ROOT)) as proc:  # fmt: skip
            yield proc
    finally:
        Path(handle.name).unlink(missing_ok=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--models", type=Path, required=True, help="JSON list of model objects (see Model)")
    parser.add_argument("--old", action="store_true", help="no /api/v0, like older LM Studio builds")
    args = parser.parse_args()
    models = [Model(**item) for item in json.loads(args.models.read_text())]
    studio = Studio({m.id: m for m in models}, old=args.old)
    # handler_cancellation: a gateway that hangs up must end the call here too (in-flight counts drop).
    web.run_app(build_app(studio), host="127.0.0.1", port=args.port, print=None, handler_cancellation=True)


if __name__ == "__main__":
    main()
