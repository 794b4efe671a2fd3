"""An OpenAI-compatible upstream that takes its time and notes the moment its client hangs up.

Run as its own process (``python -m tests.support.hostile_upstream --port P --models a,b``; the
``hostile_upstream`` context manager below starts it). It is written on bare asyncio streams, so it
sees a hang-up the moment the gateway closes the connection: while it waits or streams it keeps
reading the socket, and an end of file there is the gateway leaving.

The model id picks the behaviour:

- ``…wait-<ms>``: answer after ``ms`` milliseconds (streamed: one chunk and ``[DONE]`` then);
- ``…drip-<ms>``: streamed, a chunk at once and one every 100 ms for ``ms`` milliseconds, then
  ``[DONE]``; not streamed, the same as ``wait-<ms>``;
- anything else: answer at once.

(An id containing ``embed`` is an embedding model to the gateway: ``embed-wait-4000``.)
``--list-delay-ms`` makes ``GET /v1/models`` take that long (watching for a hang-up the same way).

Every call is one event in ``GET /_events``: ``path``, ``model``, ``user`` (the body's ``user``
field, which tests use as a tag), ``stream``, ``started``, ``ended`` (``time.monotonic()`` of this
machine, comparable with the test's own), ``hung_up`` (the client left before the answer was
complete) and ``answered``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import re
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from typing import Any

import httpx
import orjson

from tests.support.procs import PYTHON, RunningProcess, free_port, run_process

_TIMED = re.compile(r"(wait|drip)-(\d+)$")
CHUNK_EVERY = 0.1


@dataclass
class Event:
    path: str
    model: str
    user: str
    stream: bool
    started: float
    ended: float | None = None
    hung_up: bool = False
    answered: bool = False


class Hangup(Exception):
    """The client closed the connection."""


def _answer(path: str, model: str) -> dict[str, Any]:
    usage = {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4}
    if path.endswith("/embeddings"):
        return {"object": "list", "model": model, "data": [{"object": "embedding", "index": 0, "embedding": [0.5]}]}
    if path.endswith("/completions") and not path.endswith("/chat/completions"):
        choice = {"index": 0, "text": "ok", "finish_reason": "stop"}
        return {"id": "c", "object": "text_completion", "model": model, "choices": [choice], "usage": usage}
    message = {"role": "assistant", "content": "ok"}
    choice = {"index": 0, "message": message, "finish_reason": "stop"}
    return {"id": "x", "object": "chat.completion", "model": model, "choices": [choice], "usage": usage}


def _chunk(model: str, text: str) -> bytes:
    body = {"object": "chat.completion.chunk", "model": model, "choices": [{"index": 0, "delta": {"content": text}}]}
    return b"data: " + orjson.dumps(body) + b"\n\n"


class Upstream:
    def __init__(self, models: list[str], list_delay: float = 0.0) -> None:
        self.models = models
        self.list_delay = list_delay
        self.events: list[Event] = []

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                request = await self._read(reader)
                if request is None:
                    return
                await self._answer(reader, writer, *request)
        except (Hangup, ConnectionError):
            return
        finally:
            writer.transport.abort()

    @staticmethod
    async def _read(reader: asyncio.StreamReader) -> tuple[str, str, bytes] | None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, ConnectionError):
            return None
        lines = head.decode("latin-1").split("\r\n")
        method, path, _ = lines[0].split(" ", 2)
        length = 0
        for line in lines[1:]:
            name, _, value = line.partition(":")
            if name.strip().lower() == "content-length":
                length = int(value.strip())
        body = await reader.readexactly(length)
        return method, path, body

    async def _answer(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *request: Any) -> None:
        method, path, raw = request
        if path == "/_events":
            self._write(writer, b"200 OK", orjson.dumps([asdict(e) for e in self.events]))
            return
        if method == "GET":
            if path == "/v1/models":
                await self._list(reader, writer, path)
            else:  # LM Studio's richer list, asked for first, is not here
                self._write(writer, b"404 Not Found", b'{"error": "not found"}')
            return
        body = orjson.loads(raw) if raw else {}
        model = str(body.get("model", ""))
        event = Event(path, model, str(body.get("user", "")), bool(body.get("stream")), time.monotonic())
        self.events.append(event)
        timed = _TIMED.search(model)
        kind, millis = (timed.group(1), int(timed.group(2))) if timed else ("fast", 0)
        try:
            if event.stream:
                await self._stream(reader, writer, model, kind, millis / 1000)
            else:
                await self._watch(reader, millis / 1000)
                self._write(writer, b"200 OK", orjson.dumps(_answer(path, model)))
                await writer.drain()
            event.answered = True
        except (Hangup, ConnectionError):
            event.hung_up = True
            raise
        finally:
            event.ended = time.monotonic()

    async def _list(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, path: str) -> None:
        event = Event(path, "", "", False, time.monotonic())
        self.events.append(event)
        try:
            await self._watch(reader, self.list_delay)
            self._write(writer, b"200 OK", orjson.dumps(self.models_list()))
            event.answered = True
        except Hangup:
            event.hung_up = True
            raise
        finally:
            event.ended = time.monotonic()

    async def _stream(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, model: str, kind: str, seconds: float
    ) -> None:
        head = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
        writer.write(head)
        if kind == "wait":
            await self._watch(reader, seconds)
        ends = time.monotonic() + (seconds if kind == "drip" else 0)
        count = 0
        while True:
            self._chunked(writer, _chunk(model, f"t{count} "))
            await writer.drain()
            count += 1
            if time.monotonic() >= ends:
                break
            await self._watch(reader, CHUNK_EVERY)
        self._chunked(writer, b"data: [DONE]\n\n")
        writer.write(b"0\r\n\r\n")
        await writer.drain()

    @staticmethod
    async def _watch(reader: asyncio.StreamReader, seconds: float) -> None:
        """Wait ``seconds``, reading the socket meanwhile: an end of file is the client leaving."""
        if seconds <= 0:
            return
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                data = await reader.read(1)
                if not data:
                    raise Hangup

    @staticmethod
    def _chunked(writer: asyncio.StreamWriter, data: bytes) -> None:
        writer.write(b"%x\r\n" % len(data) + data + b"\r\n")

    @staticmethod
    def _write(writer: asyncio.StreamWriter, status: bytes, body: bytes) -> None:
        head = b"HTTP/1.1 " + status + b"\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body)
        writer.write(head + body)

    def models_list(self) -> dict[str, Any]:
        return {"object": "list", "data": [{"id": m, "object": "model"} for m in self.models]}


async def main(port: int, models: list[str], list_delay: float) -> None:
    upstream = Upstream(models, list_delay)
    server = await asyncio.start_server(upstream.serve, "127.0.0.1", port)
    async with server:
        await server.serve_forever()


@dataclass
class HostileUpstream:
    process: RunningProcess

    @property
    def url(self) -> str:
        """The ``/v1`` base URL a gateway backend points at."""
        return self.process.url + "/v1"

    def events(self, user: str | None = None, since: float | None = None) -> list[Event]:
        """The calls seen, those tagged ``user`` and/or started at ``since`` or later."""
        data = httpx.get(self.process.url + "/_events", timeout=5).json()
        found = [Event(**item) for item in data]
        return [e for e in found if (user is None or e.user == user) and (since is None or e.started >= since)]


@contextlib.contextmanager
def hostile_upstream(models: list[str], list_delay_ms: int = 0) -> Iterator[HostileUpstream]:
    port = free_port()
    argv = [
        PYTHON, "-m", "tests.support.hostile_upstream", "--port", str(port), "--models", ",".join(models),
        "--list-delay-ms", str(list_delay_ms),
    ]  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    with run_process(argv, ready_url=base + "/_events", base_url=base, timeout=30) as proc:
        yield HostileUpstream(proc)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--models", default="")
    parser.add_argument("--list-delay-ms", type=int, default=0)
    args = parser.parse_args()
    asyncio.run(main(args.port, [m for m in args.models.split(",") if m], args.list_delay_ms / 1000))
