"""An ``Upstream`` on httpx, for the origins the gateway's own client does not serve: behind a
proxy (HTTP CONNECT for https origins) and remote https origins, where it speaks HTTP/2 when the
origin offers it (ALPN; HTTP/1.1 otherwise).

It keeps what the own client promises: the body is read raw and decoded here by
``http1.ContentDecoder`` within the backend's bounds (httpx never inflates a body whole), the
call's time limit ``within`` bounds the whole call, the system trust store verifies certificates
(as ``ssl.create_default_context()`` does for the own client, ``SSL_CERT_FILE`` included), no
cookies are kept (one client serves every caller), no redirects are followed. httpx's exceptions
become the ``http1`` failure family here, their cause kept, so a backend maps one family.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator, Awaitable, Iterator, Mapping
from contextlib import contextmanager
from http.cookiejar import CookieJar, DefaultCookiePolicy
from types import TracebackType
from typing import TypeVar
from urllib.parse import urlsplit

import httpx

from local_lattice.backends.http1 import (
    AnswerTooLarge,
    ConnectFailed,
    ContentDecoder,
    Disconnected,
    ProtocolFailure,
    line_groups,
)

T = TypeVar("T")


@contextmanager
def _mapped(answering: bool) -> Iterator[None]:
    """httpx's failures as the ``http1`` family (``answering``: the head had arrived)."""
    try:
        yield
    except (httpx.ConnectError, httpx.ConnectTimeout, httpx.ProxyError) as exc:
        raise ConnectFailed(f"cannot connect: {exc}") from exc
    except (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError) as exc:
        if isinstance(exc, httpx.RemoteProtocolError) and "peer closed" not in str(exc).lower():
            raise ProtocolFailure(f"the upstream's answer is not valid HTTP: {exc}") from exc
        raise Disconnected(f"the upstream closed the connection: {exc}", answering=answering) from exc
    except httpx.TimeoutException as exc:
        raise TimeoutError("the upstream's answer took longer than its time limit") from exc
    except httpx.HTTPError as exc:
        raise ProtocolFailure(f"the upstream call failed: {exc}") from exc


class HttpxAnswer:
    """An ``UpstreamAnswer`` over an httpx streamed response."""

    def __init__(self, upstream: HttpxUpstream, response: httpx.Response, deadline: float | None) -> None:
        self._upstream = upstream
        self._response = response
        self._deadline = deadline
        self._closed = False
        upstream.answers_open += 1
        self.status = response.status_code
        coding = response.headers.get("content-encoding", "")
        self._decoder = ContentDecoder.for_coding(coding, upstream.max_decoded_bytes)

    def header(self, name: str) -> str | None:
        value: str | None = self._response.headers.get(name)
        return value

    async def read(self) -> bytes:
        return b"".join([piece async for piece in self.pieces()])

    def line_groups(self) -> AsyncIterator[list[bytes]]:
        return line_groups(self.pieces())

    async def pieces(self) -> AsyncIterator[bytes]:
        """The body as it arrives, decoded when compressed, within the bounds and the time limit."""
        raw = self._response.aiter_raw()
        received = 0
        try:
            while True:
                try:
                    piece = await self._upstream.within(raw.__anext__(), self._deadline, answering=True)
                except StopAsyncIteration:
                    break
                received += len(piece)
                if received > (limit := self._upstream.max_answer_bytes):
                    raise AnswerTooLarge(f"the upstream's answer is larger than {limit} bytes")
                if self._decoder is None:
                    yield piece
                else:
                    for block in self._decoder.decode(piece):
                        yield block
            if self._decoder is not None and (rest := self._decoder.rest()):
                yield rest
        finally:
            await self.aclose()

    async def aclose(self) -> None:
        if not self._closed:
            self._closed = True
            self._upstream.answers_open -= 1
        await self._response.aclose()

    async def __aenter__(self) -> HttpxAnswer:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()


class HttpxUpstream:
    """Requests to one origin through httpx (see the module docstring)."""

    def __init__(
        self,
        base_url: str,
        *,
        headers: Mapping[str, str],
        limit: int,
        connect_timeout: float,
        max_answer_bytes: int,
        max_decoded_bytes: int,
        proxy: str | None,
    ) -> None:
        parts = urlsplit(base_url)
        self.base = f"{parts.scheme}://{parts.netloc}{parts.path.rstrip('/')}"
        self.max_answer_bytes = max_answer_bytes
        self.max_decoded_bytes = max_decoded_bytes
        self.proxy = proxy
        self.answers_open = 0  # answers not yet closed
        self._client = httpx.AsyncClient(
            http2=True,
            proxy=proxy,
            trust_env=False,  # the proxy was chosen already (``upstream.proxy_for``)
            verify=ssl.create_default_context(),
            headers={**headers, "Accept-Encoding": "gzip, deflate"},
            cookies=CookieJar(policy=DefaultCookiePolicy(allowed_domains=[])),
            timeout=httpx.Timeout(None, connect=connect_timeout),
            limits=httpx.Limits(max_connections=limit, max_keepalive_connections=limit),
            follow_redirects=False,
        )

    async def within(self, call: Awaitable[T], deadline: float | None, *, answering: bool) -> T:
        """``call``'s result, its failures mapped, past ``deadline`` a ``TimeoutError``."""
        with _mapped(answering):
            if deadline is None:
                return await call
            try:
                async with asyncio.timeout_at(deadline):
                    return await call
            except TimeoutError as exc:
                raise TimeoutError("the upstream's answer took longer than its time limit") from exc

    async def request(self, method: str, path: str, body: bytes = b"", *, within: float | None = None) -> HttpxAnswer:
        deadline = None if within is None else asyncio.get_running_loop().time() + within
        request = self._client.build_request(method, self.base + path, content=body or None)
        response = await self.within(self._client.send(request, stream=True), deadline, answering=False)
        return HttpxAnswer(self, response, deadline)

    @property
    def in_use(self) -> int:
        """Answers being read (a request still being sent is not counted)."""
        return self.answers_open

    async def aclose(self) -> None:
        await self._client.aclose()
