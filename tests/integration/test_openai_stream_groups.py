"""The OpenAI-compatible backend's stream on a real socket: events that arrive in one piece are
marked to be written together, events that arrive apart are not, and no event is lost or split."""

from __future__ import annotations

import orjson

from local_lattice.backends.openai_compat import OpenAIBackend
from local_lattice.config import BackendConfig
from local_lattice.types import BackendRequest, StreamChunk
from tests.support.raw_http import HANG, Pause, RawServer, Step, always, chunk, head, pool_at

EVENTS = [
    orjson.dumps({"object": "chat.completion.chunk", "choices": [{"delta": {"content": str(i)}}]}) for i in range(5)
]
SSE_HEAD = head(headers=[("Content-Type", "text/event-stream"), ("Transfer-Encoding", "chunked")])


def sse(*payloads: bytes) -> bytes:
    return b"".join(b"data: " + p + b"\n\n" for p in payloads)


async def stream_through_backend(script: list[Step]) -> list[StreamChunk]:
    async with RawServer(always(*script)) as server:
        backend = OpenAIBackend(BackendConfig(name="up", url=server.url + "/v1"))
        try:
            request = BackendRequest("chat", "m", {"messages": [{"role": "user", "content": "hi"}]})
            return [c async for c in backend.stream(request)]
        finally:
            await backend.aclose()


async def test_events_that_arrive_together_are_marked_to_be_written_together() -> None:
    # Three events in one piece, then two more (split mid-line) and [DONE] in later pieces.
    whole = sse(*EVENTS) + b"data: [DONE]\n\n"
    cut = len(sse(*EVENTS[:3])) + 10
    script: list[Step] = [SSE_HEAD + chunk(whole[:cut]), Pause(0.05), chunk(whole[cut:]), chunk(b""), HANG]
    got = await stream_through_backend(script)
    assert [c.payload for c in got] == EVENTS
    assert [c.more for c in got] == [True, True, False, True, True]  # the last came with [DONE]


async def test_events_that_arrive_apart_are_written_apart() -> None:
    script: list[Step] = [SSE_HEAD]
    for payload in EVENTS:
        script += [chunk(sse(payload)), Pause(0.02)]
    script += [chunk(b"data: [DONE]\n\n"), chunk(b""), HANG]
    got = await stream_through_backend(script)
    assert [c.payload for c in got] == EVENTS
    assert not any(c.more for c in got)


async def test_line_groups_are_the_lines_each_piece_completes() -> None:
    script: list[Step] = [
        head(headers=[("Content-Length", "13")]),
        b"a\nb",
        Pause(0.05),
        b"c\nd\ne\nf",
        Pause(0.05),
        b"g\nh",
    ]
    async with RawServer(always(*script)) as server, pool_at(server.url) as pool:
        response = await pool.request("GET", "/lines", within=2.0)
        groups = [group async for group in response.line_groups()]
    assert groups == [[b"a\n"], [b"bc\n", b"d\n", b"e\n"], [b"fg\n"], [b"h"]]
