"""SSEResponse frees what the next request on the connection may need before the last message goes out."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from local_lattice.api.sse import SSEResponse


async def _frames() -> AsyncIterator[bytes]:
    yield b"data: 1\n\n"
    yield b"data: [DONE]\n\n"


def test_on_end_runs_before_the_final_message_and_on_close_after() -> None:
    order: list[str] = []

    async def receive() -> dict[str, Any]:
        await asyncio.Event().wait()
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.body" and not message.get("more_body", False):
            order.append("final message")

    response = SSEResponse(
        _frames(), {}, on_close=lambda status, kind: order.append(f"closed {status} {kind}"),
        on_end=lambda: order.append("ended"),
    )  # fmt: skip
    asyncio.run(response({"type": "http"}, receive, send))
    assert order == ["ended", "final message", "closed 200 None"]
