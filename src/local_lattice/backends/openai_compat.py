"""Backend for any OpenAI-compatible server: vLLM, llama.cpp's server, mlx_lm.server, SGLang, a cloud …
(LM Studio's and Ollama's own model lists live in their subclasses, ``lmstudio.py`` and ``ollama.py``.)

Owns one connection pool per upstream (``http1.Pool``), the model-list cache, SSE parsing of the
upstream's stream and the mapping of the client's failures to ``local_lattice.errors`` (all in
``_failure``).
It forwards only the backend's own key: client credentials never reach it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator, Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit

import orjson

from local_lattice.backends.deadlines import Deadlines
from local_lattice.backends.http1 import ConnectFailed, Disconnected, HTTPFailure, Pool
from local_lattice.config import BackendConfig
from local_lattice.errors import (
    BackendUnavailable,
    LatticeError,
    RateLimited,
    UpstreamError,
    UpstreamStatusError,
)
from local_lattice.security.redact import Redactor
from local_lattice.types import (
    BackendHealth,
    BackendRequest,
    BackendResponse,
    ChunkStream,
    ModelInfo,
    ModelKind,
    StreamChunk,
    Usage,
)

_PATHS = {"chat": "/chat/completions", "completions": "/completions", "embeddings": "/embeddings"}
_EMBED_WORDS = ("embed", "bge-", "e5-", "minilm", "nomic-embed", "gte-")


def guess_kind(model_id: str) -> ModelKind:
    lowered = model_id.lower()
    return "embedding" if any(word in lowered for word in _EMBED_WORDS) else "chat"


def usage_of(data: Any) -> Usage | None:
    """Usage from an OpenAI response or chunk object, or None when it carries none."""
    if not isinstance(data, dict):
        return None
    usage = data.get("usage")
    if not isinstance(usage, dict):
        return None
    prompt = usage.get("prompt_tokens")
    completion = usage.get("completion_tokens")
    return Usage(
        prompt_tokens=prompt if isinstance(prompt, int) else 0,
        completion_tokens=completion if isinstance(completion, int) else 0,
    )


def data_payloads(lines: list[bytes]) -> tuple[list[bytes], bool]:
    """The non-empty ``data:`` payloads of SSE lines, up to ``[DONE]``; and whether it came."""
    payloads: list[bytes] = []
    for line in lines:
        if not line.startswith(b"data:"):
            continue
        payload = line[5:].strip()
        if payload == b"[DONE]":
            return payloads, True
        if payload:
            payloads.append(payload)
    return payloads, False


def error_message(body: bytes) -> str:
    """The upstream's own error message, whatever shape it used."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return body[:300].decode("utf-8", "replace").strip() or "no message"
    if isinstance(data, dict):
        err = data.get("error", data.get("detail", data.get("message")))
        if isinstance(err, dict):
            err = err.get("message", err)
        if err is not None:
            return str(err)[:1000]
    return str(data)[:300]


class OpenAIBackend:
    """An upstream that speaks OpenAI's HTTP API."""

    def __init__(self, config: BackendConfig) -> None:
        self.name = config.name
        self.config = config
        self.base_url = config.url
        self._pool: Pool | None = None
        self._paths: dict[str, str] = {}
        self._models: list[ModelInfo] = []
        self._models_at = -1e18
        self._models_lock = asyncio.Lock()
        self._deadlines = Deadlines()
        headers = {"Content-Type": "application/json"}
        if config.api_key is not None:
            headers["Authorization"] = f"Bearer {config.api_key.get_secret_value()}"
        self._headers = headers
        # An upstream may echo the key it was sent in an error body; that text reaches clients and logs.
        self._redactor = Redactor([config.api_key.get_secret_value()] if config.api_key is not None else [])

    # -- plumbing ---------------------------------------------------------------------------------

    def pool(self) -> Pool:
        """Connections to the upstream's origin. It keeps no cookies: one pool serves every client,
        and a cookie one answer sets must not ride along with the next client's call."""
        if self._pool is None:
            parts = urlsplit(self.config.url)
            self._pool = Pool(
                f"{parts.scheme}://{parts.netloc}",
                headers=self._headers,
                limit=self.config.max_connections,
                connect_timeout=self.config.connect_timeout,
            )
        return self._pool

    def _path(self, url: str) -> str:
        """The path (and query) of one of this backend's URLs, as sent to its pool's origin."""
        path = self._paths.get(url)
        if path is None:
            parts = urlsplit(url)
            path = self._paths[url] = parts.path + (f"?{parts.query}" if parts.query else "")
        return path

    @contextmanager
    def _map_errors(self) -> Iterator[None]:
        """Translate the connection's failures into ours (``_failure``) around a block."""
        try:
            yield
        except LatticeError:
            raise
        except Exception as exc:
            raise self._failure(exc) from None

    def _failure(self, exc: Exception) -> Exception:
        """The error of ours a connection failure becomes (others are returned as they are): the one
        place this backend translates them."""
        if isinstance(exc, ConnectFailed | ConnectionError):
            return BackendUnavailable(f"backend {self.name!r} is unreachable: {exc}", backend=self.name)
        if isinstance(exc, Disconnected):
            if exc.answering:
                return UpstreamError(f"backend {self.name!r} broke off its answer", backend=self.name)
            return BackendUnavailable(f"backend {self.name!r} closed the connection unanswered", backend=self.name)
        if isinstance(exc, TimeoutError):
            return self._timed_out()
        if isinstance(exc, HTTPFailure):
            return UpstreamError(f"backend {self.name!r} failed: {exc}", backend=self.name)
        return exc

    def _timed_out(self) -> UpstreamError:
        return UpstreamError(f"backend {self.name!r} timed out", backend=self.name, code="upstream_timeout")

    def _raise_for_status(self, status: int, body: bytes, retry_after: str | None = None) -> None:
        message = f"backend {self.name!r} answered {status}: {self._redactor.text(error_message(body))}"
        if status == 429:
            wait = float(retry_after) if retry_after and retry_after.replace(".", "", 1).isdigit() else 1.0
            raise RateLimited(message, retry_after=wait, code="upstream_429")
        if 400 <= status < 500:
            raise UpstreamStatusError(message, status=status, backend=self.name)
        raise UpstreamError(message, backend=self.name, code=f"upstream_{status}")

    def prepare_body(self, request: BackendRequest) -> dict[str, Any]:
        """The body sent upstream; subclasses add vendor fields.

        Nulls at the top level and in messages are dropped: in OpenAI's API ``"top_p": null`` means
        "the default", which leaving the field out says to every server (llama.cpp's refuses the
        null with a 500)."""
        body = {key: value for key, value in request.body.items() if value is not None}
        messages = body.get("messages")
        if isinstance(messages, list):
            body["messages"] = [
                {k: v for k, v in m.items() if v is not None} if isinstance(m, dict) else m for m in messages
            ]
        body["model"] = request.model
        return body

    # -- the protocol -----------------------------------------------------------------------------

    async def complete(self, request: BackendRequest) -> BackendResponse:
        body = self.prepare_body(request)
        body.pop("stream", None)
        path = self._path(self.base_url + _PATHS[request.endpoint])
        # The overall limit is kept by ``Deadlines`` (one timer for all calls), not a timer per call.
        task = self._deadlines.start(request.timeout or self.config.timeout)
        try:
            resp = await self.pool().request("POST", path, orjson.dumps(body))
            content = await resp.read()
            if resp.status >= 400:
                self._raise_for_status(resp.status, content, resp.header("retry-after"))
        except LatticeError:
            raise
        except asyncio.CancelledError:
            if not self._deadlines.expired(task):
                raise
            raise self._timed_out() from None
        except Exception as exc:
            raise self._failure(exc) from None
        finally:
            self._deadlines.end(task)
        try:
            data = orjson.loads(content)
        except orjson.JSONDecodeError:
            raise UpstreamError(
                f"backend {self.name!r} answered something that is not JSON", backend=self.name
            ) from None
        if not isinstance(data, dict) or ("choices" not in data and "data" not in data):
            raise UpstreamError(f"backend {self.name!r} answered an unexpected JSON shape", backend=self.name)
        return BackendResponse(content=content, usage=usage_of(data))

    def stream(self, request: BackendRequest) -> ChunkStream:
        return self._stream(request)

    async def _stream(self, request: BackendRequest) -> AsyncGenerator[StreamChunk, None]:
        body = self.prepare_body(request)
        body["stream"] = True
        path = self._path(self.base_url + _PATHS[request.endpoint])
        within = request.timeout or self.config.timeout
        with self._map_errors():
            resp = await self.pool().request("POST", path, orjson.dumps(body), within=within)
            async with resp:
                if resp.status >= 400:
                    self._raise_for_status(resp.status, await resp.read(), resp.header("retry-after"))
                async for lines in resp.line_groups():
                    payloads, done = data_payloads(lines)
                    last = len(payloads) - 1
                    for index, payload in enumerate(payloads):
                        # Events that arrived together (with the end, when [DONE] came along) are
                        # marked so they can be written together.
                        yield self._chunk(payload, more=index < last or done)
                    if done:
                        return
        # The upstream closed without [DONE]; what it sent is all there is.

    def _chunk(self, payload: bytes, more: bool = False) -> StreamChunk:
        if b'"usage"' not in payload and b'"error"' not in payload:
            return StreamChunk(payload, more=more)
        try:
            data = orjson.loads(payload)
        except orjson.JSONDecodeError:
            raise UpstreamError(
                f"backend {self.name!r} streamed something that is not JSON", backend=self.name
            ) from None
        if isinstance(data, dict) and isinstance(data.get("error"), dict | str):
            detail = self._redactor.text(error_message(payload))
            raise UpstreamError(f"backend {self.name!r} failed mid-stream: {detail}", backend=self.name)
        return StreamChunk(payload, usage_of(data), more)

    async def models(self) -> list[ModelInfo]:
        now = time.monotonic()
        if now - self._models_at < self.config.model_list_ttl:
            return self._models
        async with self._models_lock:
            if time.monotonic() - self._models_at < self.config.model_list_ttl:
                return self._models
            self._models = await self.fetch_models()
            self._models_at = time.monotonic()
            return self._models

    def forget_models(self) -> None:
        self._models_at = -1e18

    async def fetch_models(self) -> list[ModelInfo]:
        data = await self._get_json(self.base_url + "/models")
        items = data.get("data", []) if isinstance(data, dict) else []
        return [
            ModelInfo(id=str(item["id"]), backend=self.name, kind=guess_kind(str(item["id"])))
            for item in items
            if isinstance(item, dict) and "id" in item
        ]

    async def _get_json(self, url: str) -> Any:
        with self._map_errors():
            resp = await self.pool().request("GET", self._path(url), within=10.0)
            content = await resp.read()
            if resp.status >= 400:
                self._raise_for_status(resp.status, content)
        try:
            return orjson.loads(content)
        except orjson.JSONDecodeError:
            raise UpstreamError(
                f"backend {self.name!r} listed models in something that is not JSON", backend=self.name
            ) from None

    async def health(self) -> BackendHealth:
        try:
            models = await self.models()
        except LatticeError as exc:
            return BackendHealth(ok=False, detail=exc.message)
        return BackendHealth(ok=True, detail=f"{len(models)} models", extra={"models": len(models)})

    async def aclose(self) -> None:
        if self._pool is not None:
            await self._pool.aclose()
            self._pool = None
