"""``FakeUpstream``: the ``Upstream`` transport seam without sockets, for unit tests of the HTTP
backends. Each request is answered by a function of ``(method, path, body)`` returning a status,
headers and body pieces, or raising one of the transport's failures; requests are recorded."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from types import TracebackType

from local_lattice.backends.http1 import line_groups


@dataclass
class FakeAnswer:
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    pieces: Sequence[bytes] = (b"",)
    closed: bool = False

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())

    async def read(self) -> bytes:
        return b"".join([piece async for piece in self._pieces()])

    def line_groups(self) -> AsyncIterator[list[bytes]]:
        return line_groups(self._pieces())

    async def _pieces(self) -> AsyncIterator[bytes]:
        try:
            for piece in self.pieces:
                yield piece
        finally:
            self.closed = True

    async def __aenter__(self) -> FakeAnswer:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.closed = True


@dataclass
class FakeUpstream:
    answer: Callable[[str, str, bytes], FakeAnswer]
    requests: list[tuple[str, str, bytes, float | None]] = field(default_factory=list)
    answers: list[FakeAnswer] = field(default_factory=list)
    closed: bool = False

    async def request(self, method: str, path: str, body: bytes = b"", *, within: float | None = None) -> FakeAnswer:
        self.requests.append((method, path, body, within))
        answer = self.answer(method, path, body)
        self.answers.append(answer)
        return answer

    async def aclose(self) -> None:
        self.closed = True
