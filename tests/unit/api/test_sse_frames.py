"""SSE framing of chunk streams: events that arrived together are written together, with nothing
lost, reordered or delayed past the chunk after them, failures included."""

from __future__ import annotations

import pytest

from local_lattice.api.sse import sse_bytes
from local_lattice.errors import UpstreamError
from local_lattice.types import ChunkStream, StreamChunk


async def chunks(*items: tuple[bytes, bool], fail: Exception | None = None) -> ChunkStream:
    for payload, more in items:
        yield StreamChunk(payload, more=more)
    if fail is not None:
        raise fail


async def writes(first: StreamChunk | None, rest: ChunkStream) -> list[bytes]:
    return [data async for data in sse_bytes(first, rest)]


async def test_chunks_marked_more_are_written_with_the_chunk_after_them() -> None:
    rest = chunks((b"1", True), (b"2", True), (b"3", False), (b"4", False), (b"5", True), (b"6", False))
    assert await writes(StreamChunk(b"0"), rest) == [
        b"data: 0\n\n",
        b"data: 1\n\ndata: 2\n\ndata: 3\n\n",
        b"data: 4\n\n",
        b"data: 5\n\ndata: 6\n\n",
        b"data: [DONE]\n\n",
    ]


async def test_a_first_chunk_marked_more_waits_for_the_rest_and_a_last_one_for_done() -> None:
    rest = chunks((b"1", True), (b"2", False), (b"3", True))
    assert await writes(StreamChunk(b"0", more=True), rest) == [
        b"data: 0\n\ndata: 1\n\ndata: 2\n\n",
        b"data: 3\n\ndata: [DONE]\n\n",
    ]


async def test_chunks_never_marked_are_written_one_by_one() -> None:
    rest = chunks((b"1", False), (b"2", False))
    assert await writes(None, rest) == [b"data: 1\n\n", b"data: 2\n\n", b"data: [DONE]\n\n"]


@pytest.mark.parametrize("fail", [UpstreamError("backend broke off"), RuntimeError("bug")])
async def test_a_failure_after_held_chunks_writes_them_first_then_the_error_and_done(fail: Exception) -> None:
    # A chunk marked ``more`` is still written when the stream fails instead of going on.
    rest = chunks((b"1", False), (b"2", True), fail=fail)
    frames = await writes(None, rest)
    assert frames[0] == b"data: 1\n\n"
    assert len(frames) == 2
    assert frames[1].startswith(b'data: 2\n\ndata: {"error":')
    assert frames[1].endswith(b"\n\ndata: [DONE]\n\n")
