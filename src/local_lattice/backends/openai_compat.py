"""Backend for any OpenAI-compatible server: vLLM, llama.cpp's server, mlx_lm.server, SGLang, a cloud …
(LM Studio's and Ollama's own model lists live in their subclasses, ``lmstudio.py`` and ``ollama.py``.)

Owns one transport per upstream (``upstream.open_upstream``: the own HTTP/1.1 pool, or httpx
behind a proxy and for remote https origins), the model-list cache, reading the upstream's stream
(``event_stream.EventStream``) and the mapping of the transport's failures to
``local_lattice.errors`` (all in ``_failure``, reached through ``_map_errors``). Every call has one
time limit, kept by the transport (``within``).
It forwards only the backend's own key: client credentials never reach it. A call that belongs to
a session (``BackendRequest.session``, set when several backends serve its model) is marked for the
server's prompt cache: ``cache_prompt`` for llama.cpp's server, ``prompt_cache_key`` for OpenAI.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncGenerator, Iterator, Mapping
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit

import orjson

from local_lattice.backends.event_stream import EventStream, error_message, usage_of
from local_lattice.backends.http1 import AnswerTooLarge, ConnectFailed, Disconnected, HTTPFailure
from local_lattice.backends.upstream import Upstream, open_upstream
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
)

_PATHS = {"chat": "/chat/completions", "completions": "/completions", "embeddings": "/embeddings"}
_EMBED_WORDS = ("embed", "bge-", "e5-", "minilm", "nomic-embed", "gte-")
_PROMPT_CACHE_KEY_HOSTS = ("api.openai.com",)  # servers known to take ``prompt_cache_key``
LIST_TIMEOUT = 10.0  # seconds for a model list


def guess_kind(model_id: str) -> ModelKind:
    lowered = model_id.lower()
    return "embedding" if any(word in lowered for word in _EMBED_WORDS) else "chat"


class OpenAIBackend:
    """An upstream that speaks OpenAI's HTTP API."""

    def __init__(self, config: BackendConfig, env: Mapping[str, str] | None = None) -> None:
        self.name = config.name
        self.config = config
        self.base_url = config.url
        self._env = os.environ if env is None else env  # HTTPS_PROXY / NO_PROXY …
        self._upstream: Upstream | None = None
        self._paths: dict[str, str] = {}
        self._models: list[ModelInfo] = []
        self._models_at = -1e18
        self._listed = False  # a model list has been fetched once
        self._models_lock = asyncio.Lock()
        headers = {"Content-Type": "application/json"}
        if config.api_key is not None:
            headers["Authorization"] = f"Bearer {config.api_key.get_secret_value()}"
        self._headers = headers
        # An upstream may echo the key it was sent in an error body; that text reaches clients and logs.
        self._redactor = Redactor([config.api_key.get_secret_value()] if config.api_key is not None else [])
        self._cache_field: str | None = None if config.prompt_cache in ("auto", "off") else config.prompt_cache
        if config.prompt_cache == "auto" and urlsplit(config.url).hostname in _PROMPT_CACHE_KEY_HOSTS:
            self._cache_field = "prompt_cache_key"

    # -- plumbing ---------------------------------------------------------------------------------

    def upstream(self) -> Upstream:
        """The transport to the upstream's origin. It keeps no cookies: one transport serves every
        client, and a cookie one answer sets must not ride along with the next client's call."""
        if self._upstream is None:
            parts = urlsplit(self.config.url)
            self._upstream = open_upstream(
                f"{parts.scheme}://{parts.netloc}",
                headers=self._headers,
                limit=self.config.max_connections,
                connect_timeout=self.config.connect_timeout,
                max_answer_bytes=self.config.max_answer_bytes,
                max_decoded_bytes=self.config.max_decoded_bytes,
                proxy=self.config.proxy,
                env=self._env,
            )
        return self._upstream

    def use_upstream(self, upstream: Upstream) -> None:
        """Talk to the origin through ``upstream`` (a test's fake transport, say)."""
        self._upstream = upstream

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
            mapped = self._failure(exc)
            if mapped is exc:
                raise
            raise mapped from exc

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
        if isinstance(exc, AnswerTooLarge):
            return UpstreamError(f"backend {self.name!r}: {exc}", backend=self.name, code="upstream_answer_too_large")
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
        if request.session is not None and self._cache_field is not None:
            self._mark_session(body, request.session)
        return body

    def _mark_session(self, body: dict[str, Any], session: str) -> None:
        """Tell the server which cached prompt this call continues (a field the client set wins)."""
        if self._cache_field == "cache_prompt":
            body.setdefault("cache_prompt", True)
        else:
            body.setdefault("prompt_cache_key", session)

    # -- the protocol -----------------------------------------------------------------------------

    async def complete(self, request: BackendRequest) -> BackendResponse:
        body = self.prepare_body(request)
        body.pop("stream", None)
        path = self._path(self.base_url + _PATHS[request.endpoint])
        within = request.timeout or self.config.timeout
        try:  # ``_map_errors`` spelled out: a generator context manager costs more than the rest here
            resp = await self.upstream().request("POST", path, orjson.dumps(body), within=within)
            content = await resp.read()
            if resp.status >= 400:
                self._raise_for_status(resp.status, content, resp.header("retry-after"))
        except LatticeError:
            raise
        except Exception as exc:
            mapped = self._failure(exc)
            if mapped is exc:
                raise
            raise mapped from exc
        try:
            data = orjson.loads(content)
        except orjson.JSONDecodeError as exc:
            raise UpstreamError(
                f"backend {self.name!r} answered something that is not JSON", backend=self.name
            ) from exc
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
        options = body.get("stream_options")
        events = EventStream(
            self.name, self._redactor, isinstance(options, dict) and options.get("include_usage") is True
        )
        with self._map_errors():
            resp = await self.upstream().request("POST", path, orjson.dumps(body), within=within)
            async with resp:
                if resp.status >= 400:
                    self._raise_for_status(resp.status, await resp.read(), resp.header("retry-after"))
                async for lines in resp.line_groups():
                    for chunk in events.feed(lines):
                        yield chunk
                    if events.done:
                        break
            for chunk in events.end():
                yield chunk

    async def models(self) -> list[ModelInfo]:
        now = time.monotonic()
        if now - self._models_at < self.config.model_list_ttl:
            return self._models
        async with self._models_lock:
            if time.monotonic() - self._models_at < self.config.model_list_ttl:
                return self._models
            try:
                self._models = await self.fetch_models()
            except UpstreamError as exc:
                # A server busy answering this gateway's calls may list its models late (llama-cpp-
                # python's lists them only between requests): busy is not gone, keep the last list.
                if exc.code != "upstream_timeout" or not self._listed or not self.upstream().in_use:
                    raise
            self._listed = True
            self._models_at = time.monotonic()
            return self._models

    def forget_models(self) -> None:
        self._models_at = -1e18

    async def fetch_models(self) -> list[ModelInfo]:
        data = await self._get_json(self.base_url + "/models")
        items = data.get("data", []) if isinstance(data, dict) else []
        if self.config.prompt_cache == "auto" and any(
            isinstance(item, dict) and item.get("owned_by") == "llamacpp" for item in items
        ):
            self._cache_field = "cache_prompt"  # llama.cpp's own server names itself so
        return [
            ModelInfo(id=str(item["id"]), backend=self.name, kind=guess_kind(str(item["id"])))
            for item in items
            if isinstance(item, dict) and "id" in item
        ]

    async def _get_json(self, url: str) -> Any:
        with self._map_errors():
            resp = await self.upstream().request("GET", self._path(url), within=LIST_TIMEOUT)
            content = await resp.read()
            if resp.status >= 400:
                self._raise_for_status(resp.status, content)
        try:
            return orjson.loads(content)
        except orjson.JSONDecodeError as exc:
            raise UpstreamError(
                f"backend {self.name!r} listed models in something that is not JSON", backend=self.name
            ) from exc

    async def health(self) -> BackendHealth:
        try:
            models = await self.models()
        except LatticeError as exc:
            return BackendHealth(ok=False, detail=exc.message)
        return BackendHealth(ok=True, detail=f"{len(models)} models", extra={"models": len(models)})

    async def probe(self) -> BackendHealth:
        """The model list fetched now; a success refreshes the cache, a failure leaves it alone (the
        calls in flight decide about those)."""
        try:
            models = await self.fetch_models()
        except LatticeError as exc:
            return BackendHealth(ok=False, detail=exc.message)
        self._models, self._models_at, self._listed = models, time.monotonic(), True
        return BackendHealth(ok=True, detail=f"{len(models)} models", extra={"models": len(models)})

    async def aclose(self) -> None:
        if self._upstream is not None:
            await self._upstream.aclose()
            self._upstream = None
