"""A swarm as a chunk stream: the final answer is relayed as it is generated where the strategy has a
live author (first-success winner, aggregator, debate judge); otherwise the finished answer is sliced.
The last chunk carries the ``swarm`` metadata and usage. Closing the stream cancels the swarm, which
closes every upstream request it still has open. Yields typed chunks only (SSE framing is the API's)."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncGenerator, Awaitable, Callable

import orjson

from local_lattice.swarm.outcome import SwarmOutcome
from local_lattice.swarm.runner import TextSink
from local_lattice.types import JSONObject, StreamChunk

RunSwarm = Callable[[TextSink | None], Awaitable[SwarmOutcome]]


class LiveText:
    """The producer side: strategies ``start`` it once the author is known and ``push`` deltas."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[tuple[str, str]] = asyncio.Queue()
        self.model: str | None = None

    @property
    def started(self) -> bool:
        return self.model is not None

    def start(self, model: str) -> None:
        self.model = model
        self.queue.put_nowait(("start", model))

    def push(self, text: str) -> None:
        self.queue.put_nowait(("delta", text))


class ChunkMaker:
    """Builds the chat chunks of one streamed swarm answer (one id, one creation time)."""

    def __init__(self) -> None:
        self.id = f"chatcmpl-swarm-{uuid.uuid4().hex[:16]}"
        self.created = int(time.time())
        self.model = "swarm/pending"

    def make(self, delta: JSONObject, finish: str | None = None, **extra: object) -> StreamChunk:
        body = {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
            **extra,
        }
        return StreamChunk(orjson.dumps(body))


async def stream_swarm(run: RunSwarm, chunk_chars: int, maker: ChunkMaker) -> AsyncGenerator[StreamChunk, None]:
    """Run the swarm and yield its answer as chat.completion.chunk objects, then the metadata chunk.

    A failure before the first chunk propagates as the swarm's own error (so the caller can still
    answer with a status); after that it ends the stream through the SSE writer's error event.
    ``maker.model`` names the author (``swarm/<model>``) from the first chunk on."""
    sink = LiveText()
    task = asyncio.ensure_future(run(sink))
    task.add_done_callback(lambda _: sink.queue.put_nowait(("done", "")))
    try:
        while True:
            kind, value = await sink.queue.get()
            if kind == "start":
                maker.model = f"swarm/{value}"
                yield maker.make({"role": "assistant", "content": ""})
            elif kind == "delta":
                yield maker.make({"content": value})
            else:
                break
        outcome = task.result()
        maker.model = f"swarm/{outcome.winner_model}"
        if not sink.started:
            yield maker.make({"role": "assistant", "content": ""})
            for at in range(0, len(outcome.text), chunk_chars):
                yield maker.make({"content": outcome.text[at : at + chunk_chars]})
        yield maker.make({}, outcome.finish_reason, usage=outcome.usage().as_dict(), swarm=outcome.meta())
    finally:
        if not task.done():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
