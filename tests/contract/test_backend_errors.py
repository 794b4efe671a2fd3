"""The Backend contract's error boundary, for every backend type that calls an upstream: each maps
its transport's failures to ours in one place, keeping the cause, and never leaves a connection open.

- unreachable (nothing listens): ``BackendUnavailable``, for a whole answer and a stream alike;
- out of time (the upstream reads the request and says nothing): ``UpstreamError`` with code
  ``upstream_timeout`` once the call's time limit passes, and the connection is closed;
- ``aclose()`` on a stream that has yielded its first chunk closes the upstream connection at once.

The upstream is a ``RawServer`` on loopback that answers each type's listing paths, stalls on the
model ``hang`` and, for a stream, writes one event in the type's own dialect and then nothing more.
In-process engines (``llamacpp``, ``mlx``) have no upstream to lose; the contract suite checks that
closing their streams early frees the model for the next call.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass

import orjson
import pytest

from local_lattice.backends.base import Backend
from local_lattice.backends.registry import build_backend
from local_lattice.config import BackendConfig
from local_lattice.errors import BackendUnavailable, LatticeError, UpstreamError
from local_lattice.types import BackendRequest
from tests.support.procs import free_port
from tests.support.raw_http import HANG, RawRequest, RawServer, Step, chunk, head, sized

KEY = "sk-contract-0123456789"
MODEL = "stall-model"
# The first event of a stream, in each dialect: OpenAI's chunk, Anthropic's opening events.
OPENAI_EVENT = b"data: " + orjson.dumps(
    {"object": "chat.completion.chunk", "model": MODEL, "choices": [{"index": 0, "delta": {"content": "Hi"}}]}
)
ANTHROPIC_EVENTS = [
    {
        "type": "message_start",
        "message": {
            "id": "msg_1",
            "type": "message",
            "role": "assistant",
            "model": MODEL,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {"input_tokens": 3, "output_tokens": 0},
        },
    },
    {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
    {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hi"}},
]
ANTHROPIC_EVENT = b"".join(
    f"event: {event['type']}\ndata: ".encode() + orjson.dumps(event) + b"\n\n" for event in ANTHROPIC_EVENTS
)


def _json(data: object) -> bytes:
    return sized(orjson.dumps(data), [("Content-Type", "application/json")])


def answer(request: RawRequest) -> Sequence[Step]:
    """Listings for every type; ``hang`` never answers; a stream writes one event and stalls."""
    target = request.target
    if request.request_line.startswith(b"GET"):
        if target == "/api/tags":
            return [_json({"models": [{"name": MODEL}]})]
        if target == "/api/ps":
            return [_json({"models": []})]
        if target == "/api/v0/models":
            return [_json({"object": "list", "data": [{"id": MODEL, "type": "llm", "state": "loaded"}]})]
        return [_json({"object": "list", "data": [{"id": MODEL, "object": "model"}]})]
    body = orjson.loads(request.body)
    if body.get("model") == "hang":
        return [HANG]
    event = ANTHROPIC_EVENT if target == "/v1/messages" else OPENAI_EVENT + b"\n\n"
    if body.get("stream"):
        return [
            head(headers=[("Content-Type", "text/event-stream"), ("Transfer-Encoding", "chunked")]),
            chunk(event),
            HANG,
        ]
    return [HANG]


@dataclass(frozen=True, slots=True)
class Kind:
    """One backend type: how its config entry names the upstream's root."""

    type: str
    suffix: str = "/v1"  # what its ``url`` adds to the root

    def build(self, root: str) -> Backend:
        entry = {"name": self.type, "type": self.type, "url": root + self.suffix, "api_key": KEY, "max_retries": 0}
        return build_backend(BackendConfig.model_validate(entry))


KINDS = [Kind("openai"), Kind("lmstudio"), Kind("ollama", ""), Kind("anthropic", "")]


def chat(model: str = MODEL, timeout: float | None = None) -> BackendRequest:
    body = {"messages": [{"role": "user", "content": "Say hi"}], "max_tokens": 8}
    return BackendRequest("chat", model, body, timeout=timeout)


@contextlib.asynccontextmanager
async def built(kind: Kind, root: str) -> AsyncIterator[Backend]:
    backend = kind.build(root)
    try:
        yield backend
    finally:
        await backend.aclose()


async def first_chunk(backend: Backend, request: BackendRequest) -> None:
    stream = backend.stream(request)
    try:
        await stream.__anext__()
    finally:
        await stream.aclose()


async def call(backend: Backend, request: BackendRequest, streamed: bool) -> None:
    if streamed:
        await first_chunk(backend, request)
    else:
        await backend.complete(request)


def assert_mapped(error: LatticeError) -> None:
    assert error.__cause__ is not None, "the foreign error is kept as the cause"
    assert KEY not in error.message


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.type)
async def test_an_unreachable_upstream_is_unavailable(kind: Kind) -> None:
    async with built(kind, f"http://127.0.0.1:{free_port()}") as backend, asyncio.timeout(20):
        with pytest.raises(BackendUnavailable) as whole:
            await backend.complete(chat())
        assert_mapped(whole.value)
        with pytest.raises(BackendUnavailable) as streamed:
            await first_chunk(backend, chat())
        assert_mapped(streamed.value)
        assert not (await backend.health()).ok or kind.type == "anthropic"  # it lists configured models only


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.type)
@pytest.mark.parametrize("streamed", [False, True], ids=["complete", "stream"])
async def test_a_silent_upstream_times_out_and_its_connection_is_closed(kind: Kind, streamed: bool) -> None:
    async with RawServer(answer) as server, built(kind, server.url) as backend:
        loop = asyncio.get_running_loop()
        started = loop.time()
        async with asyncio.timeout(20):
            with pytest.raises(UpstreamError) as failed:
                await call(backend, chat("hang", timeout=0.5), streamed)
        assert failed.value.code == "upstream_timeout"
        assert_mapped(failed.value)
        assert loop.time() - started < 10
        (sent,) = [r for r in server.requests if r.request_line.startswith(b"POST")]
        await server.client_closed(sent.connection, seconds=5)


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.type)
async def test_aclose_mid_stream_closes_the_upstream_connection(kind: Kind) -> None:
    async with RawServer(answer) as server, built(kind, server.url) as backend:
        stream = backend.stream(chat())
        async with asyncio.timeout(20):
            first = await stream.__anext__()
        assert orjson.loads(first.payload)["object"] == "chat.completion.chunk"
        (sent,) = [r for r in server.requests if r.request_line.startswith(b"POST")]
        assert not server.links[sent.connection].client_closed.is_set()  # the upstream is still answering
        await stream.aclose()
        await server.client_closed(sent.connection, seconds=5)
