"""BatchingWriter: a response's head leaves with its body, writes wait for the end of the loop's
turn only while other requests are in flight, and nothing is reordered, lost or held for long."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from local_lattice.api.server_protocol import FLUSH_BYTES, BatchingWriter


class RecordingTransport:
    """What reached the socket, one entry per ``write`` call."""

    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.closing = False
        self.reading = True

    def write(self, data: bytes) -> None:
        assert not self.closing, "written after close"
        self.writes.append(data)

    def close(self) -> None:
        self.closing = True

    def is_closing(self) -> bool:
        return self.closing

    def pause_reading(self) -> None:
        self.reading = False

    def resume_reading(self) -> None:
        self.reading = True

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.1", 4242)}.get(name, default)


def writer_for(in_flight: int) -> tuple[BatchingWriter, RecordingTransport]:
    transport = RecordingTransport()
    writer = BatchingWriter(transport, asyncio.get_running_loop(), range(in_flight))  # type: ignore[arg-type]
    return writer, transport


async def next_turn() -> None:
    await asyncio.sleep(0)
    await asyncio.sleep(0)


async def test_alone_a_head_leaves_with_its_body_in_one_write() -> None:
    writer, transport = writer_for(in_flight=1)
    writer.hold_next()
    writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n")
    assert transport.writes == []
    writer.write(b"hi")
    assert transport.writes == [b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nhi"]
    await next_turn()
    assert len(transport.writes) == 1  # the turn's end finds nothing left


async def test_alone_writes_after_the_head_go_out_at_once() -> None:
    writer, transport = writer_for(in_flight=1)
    writer.write(b"data: 1\n\n")
    writer.write(b"data: 2\n\n")
    assert transport.writes == [b"data: 1\n\n", b"data: 2\n\n"]


async def test_a_head_with_no_body_yet_leaves_on_the_next_turn() -> None:
    writer, transport = writer_for(in_flight=1)
    writer.hold_next()
    writer.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n")
    await next_turn()
    assert transport.writes == [b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n"]
    writer.write(b"5\r\nhello\r\n")
    assert transport.writes[-1] == b"5\r\nhello\r\n"


async def test_with_others_in_flight_a_turn_writes_once_and_in_order() -> None:
    writer, transport = writer_for(in_flight=16)
    writer.hold_next()
    for part in (b"head;", b"one;", b"two;", b"three"):
        writer.write(part)
    assert transport.writes == []
    await next_turn()
    assert transport.writes == [b"head;one;two;three"]
    writer.write(b"four")  # a later turn: a write of its own
    await next_turn()
    assert transport.writes == [b"head;one;two;three", b"four"]


async def test_a_large_write_is_not_held_back() -> None:
    writer, transport = writer_for(in_flight=16)
    big = b"x" * FLUSH_BYTES
    writer.write(big)
    assert transport.writes == [big]


async def test_what_gathers_past_the_flush_size_goes_at_once_in_order() -> None:
    writer, transport = writer_for(in_flight=16)
    piece = b"y" * (FLUSH_BYTES // 4)
    writer.write(b"first")
    for _ in range(4):
        writer.write(piece)
    assert transport.writes == [b"first" + piece * 4]
    writer.write(b"last")
    await next_turn()
    assert transport.writes == [b"first" + piece * 4, b"last"]


async def test_close_sends_what_waits_then_closes() -> None:
    writer, transport = writer_for(in_flight=16)
    writer.write(b"bye")
    writer.close()
    assert transport.writes == [b"bye"]
    assert transport.closing
    await next_turn()  # the scheduled flush finds nothing and writes nothing after the close
    assert transport.writes == [b"bye"]


async def test_nothing_is_written_to_a_transport_already_closing() -> None:
    writer, transport = writer_for(in_flight=16)
    writer.write(b"late")
    transport.closing = True  # the peer went away before the turn ended
    await next_turn()
    assert transport.writes == []


@pytest.mark.parametrize("name", ["peername", "sockname"])
async def test_everything_else_is_the_transports(name: str) -> None:
    writer, transport = writer_for(in_flight=1)
    assert writer.get_extra_info(name, "absent") == transport.get_extra_info(name, "absent")
    writer.pause_reading()
    assert not transport.reading
    writer.resume_reading()
    assert transport.reading
    assert not writer.is_closing()
