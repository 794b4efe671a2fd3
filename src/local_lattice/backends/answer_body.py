"""An upstream answer's body, whichever transport carried it: compressed bodies decoded within a
bound, and the body cut into the lines each arriving piece completes (the SSE reader's input).
"""

from __future__ import annotations

import zlib
from collections.abc import AsyncIterator, Iterator

from local_lattice.backends.transport_errors import AnswerTooLarge, ProtocolFailure

DECODE_BLOCK = 1 << 18  # compressed bodies are inflated at most this much at a time


async def line_groups(pieces: AsyncIterator[bytes]) -> AsyncIterator[list[bytes]]:
    """The lines each arriving piece completes, together (a line split across pieces comes with
    the piece that ends it). Lines that arrived together can be handled together. A line's pieces
    are kept in a list until it ends (joined once: a long line costs no copying per piece); the
    body's bound bounds it."""
    rest: list[bytes] = []
    async for piece in pieces:
        if b"\n" not in piece:
            rest.append(piece)
            continue
        if rest:
            rest.append(piece)
            piece = b"".join(rest)
        *whole, last = piece.split(b"\n")
        rest = [last] if last else []
        yield [line + b"\n" for line in whole]
    if rest:
        yield [b"".join(rest)]


class ContentDecoder:
    """Undoes a gzip or deflate content coding a block of ``DECODE_BLOCK`` bytes at a time, so
    a compression bomb is refused (``AnswerTooLarge`` past ``limit`` decoded bytes) without being
    inflated whole."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._zlib = zlib.decompressobj(zlib.MAX_WBITS | 32)  # gzip or zlib-wrapped deflate
        self._compressed = False  # any compressed byte arrived
        self._decoded = 0

    @classmethod
    def for_coding(cls, coding: str, limit: int) -> ContentDecoder | None:
        """A decoder for a Content-Encoding value, or None for an identity (or unknown) one."""
        return cls(limit) if coding.strip().lower() in {"gzip", "deflate", "x-gzip"} else None

    def decode(self, piece: bytes) -> Iterator[bytes]:
        self._compressed = self._compressed or bool(piece)
        while piece:
            try:
                block = self._zlib.decompress(piece, DECODE_BLOCK)
            except zlib.error as exc:
                raise ProtocolFailure(f"the upstream's compressed body does not decode: {exc}") from exc
            self._count(len(block))
            piece = self._zlib.unconsumed_tail
            if block:
                yield block

    def rest(self) -> bytes:
        """The last bytes; zlib says nothing of a stream cut short, so its end is checked."""
        rest = self._zlib.flush()
        if self._compressed and not self._zlib.eof:
            raise ProtocolFailure("the upstream's compressed body ends before its compressed stream does")
        self._count(len(rest))
        return rest

    def _count(self, size: int) -> None:
        self._decoded += size
        if self._decoded > self.limit:
            raise AnswerTooLarge(f"the upstream's answer decompresses to more than {self.limit} bytes")
