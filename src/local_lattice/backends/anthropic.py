"""Backend for Anthropic's Messages API, on the official ``anthropic`` async client.

Owns the client (built on first use), the translation of each OpenAI request to Messages
parameters and back (via ``protocol.anthropic``), and the mapping of the client's exceptions to
ours (all in ``_map_errors``, with the key redacted). Retries on 429/529/5xx are the client's,
which honour ``Retry-After``; ``max_retries`` bounds them. It lists its configured models only, so
listing never costs a cloud call.
"""

from __future__ import annotations

import re
from collections.abc import AsyncGenerator, Iterator
from contextlib import contextmanager
from http.cookiejar import CookieJar, DefaultCookiePolicy
from typing import TYPE_CHECKING, Any

import orjson

from local_lattice.config import BackendConfig
from local_lattice.errors import (
    BackendUnavailable,
    InvalidRequest,
    LatticeError,
    RateLimited,
    UpstreamError,
    UpstreamStatusError,
)
from local_lattice.protocol.anthropic import message_to_chat_completion, openai_to_messages
from local_lattice.protocol.anthropic_stream import EventsToChunks
from local_lattice.types import (
    BackendHealth,
    BackendRequest,
    BackendResponse,
    ChunkStream,
    ModelInfo,
    StreamChunk,
    Usage,
)

if TYPE_CHECKING:
    import anthropic

DEFAULT_MODEL = "claude-sonnet-4-5"
KEY_SETTING = "ANTHROPIC_API_KEY"
_KEY_SHAPE = re.compile(r"sk-ant-[A-Za-z0-9_\-]+")


class AnthropicBackend:
    """A cloud backend: Anthropic's API or anything that serves ``/v1/messages`` (another gateway)."""

    cloud = True

    def __init__(self, config: BackendConfig) -> None:
        self.name = config.name
        self.config = config
        self._key = config.api_key.get_secret_value() if config.api_key is not None else ""
        self._client: anthropic.AsyncAnthropic | None = None

    @property
    def missing_setting(self) -> str | None:
        """The setting that keeps this backend from working, or None when it can be called."""
        return None if self._key else KEY_SETTING

    def client(self) -> anthropic.AsyncAnthropic:
        if not self._key:
            raise BackendUnavailable(
                f"backend {self.name!r} has no API key: set {KEY_SETTING} (or api_key for this backend)",
                backend=self.name,
                code="cloud_key_missing",
            )
        if self._client is None:
            import anthropic  # lazily: the client is an optional extra

            headers = {"anthropic-version": self.config.anthropic_version} if self.config.anthropic_version else None
            self._client = anthropic.AsyncAnthropic(
                api_key=self._key,
                base_url=self.config.url or None,
                max_retries=self.config.max_retries,
                timeout=anthropic.Timeout(self.config.timeout, connect=self.config.connect_timeout),
                default_headers=headers,
                # One client serves every caller: a cookie one answer sets must not ride along with
                # the next caller's request, so its jar accepts none.
                http_client=anthropic.DefaultAsyncHttpxClient(
                    cookies=CookieJar(policy=DefaultCookiePolicy(allowed_domains=[]))
                ),
            )
        return self._client

    def _redact(self, text: str) -> str:
        if self._key:
            text = text.replace(self._key, "[redacted]")
        return _KEY_SHAPE.sub("[redacted]", text)

    @contextmanager
    def _map_errors(self) -> Iterator[None]:
        """Translate the client's exceptions into ours: the one place this backend does so."""
        import anthropic

        try:
            yield
        except LatticeError:
            raise
        except anthropic.APIStatusError as exc:
            raise self._status_error(exc) from exc
        except anthropic.APITimeoutError as exc:
            raise UpstreamError(f"backend {self.name!r} timed out", backend=self.name, code="upstream_timeout") from exc
        except anthropic.APIConnectionError as exc:
            raise BackendUnavailable(
                f"backend {self.name!r} is unreachable: {self._redact(str(exc))}", backend=self.name
            ) from exc
        except anthropic.AnthropicError as exc:
            raise UpstreamError(f"backend {self.name!r} failed: {self._redact(str(exc))}", backend=self.name) from exc

    def _status_error(self, exc: Any) -> LatticeError:
        status = int(exc.status_code)
        detail = exc.api_message or exc.message
        message = f"backend {self.name!r} answered {status}: {self._redact(str(detail))}"
        if status == 429:
            retry = exc.response.headers.get("retry-after")
            seconds = float(retry) if retry and retry.replace(".", "", 1).isdigit() else 5.0
            return RateLimited(message, retry_after=seconds, kind="rate_limit_error")
        if status == 529:
            return BackendUnavailable(message, backend=self.name, code="upstream_overloaded")
        if 400 <= status < 500:
            return UpstreamStatusError(message, status=status, backend=self.name)
        return UpstreamError(message, backend=self.name, code=f"upstream_{status}")

    def _params(self, request: BackendRequest) -> dict[str, Any]:
        """Keyword arguments for ``messages.create``. Only the three every client release takes are
        named; the rest travel in ``extra_body`` because releases differ in which they accept
        (some have no ``temperature`` keyword) while the API takes them all."""
        if request.endpoint != "chat":
            raise InvalidRequest(
                f"backend {self.name!r} serves chat only, not {request.endpoint}", code="unsupported_endpoint"
            )
        params = openai_to_messages(request.body, request.model)
        core = {key: params.pop(key) for key in ("model", "max_tokens", "messages")}
        return {**core, "extra_body": params, "timeout": request.timeout or self.config.timeout}

    # -- the protocol -----------------------------------------------------------------------------

    async def complete(self, request: BackendRequest) -> BackendResponse:
        params = self._params(request)
        with self._map_errors():
            message = await self.client().messages.create(**params)
        data = message_to_chat_completion(message.to_dict())
        usage = data["usage"]
        return BackendResponse(orjson.dumps(data), Usage(usage["prompt_tokens"], usage["completion_tokens"]))

    def stream(self, request: BackendRequest) -> ChunkStream:
        return self._stream(request)

    async def _stream(self, request: BackendRequest) -> AsyncGenerator[StreamChunk, None]:
        params = self._params(request)
        translator = EventsToChunks(model=request.model)
        with self._map_errors():
            events = await self.client().messages.create(**params, stream=True)
            try:
                async for event in events:
                    for chunk in translator.feed(event.to_dict()):
                        usage = translator.usage if "usage" in chunk else None
                        yield StreamChunk(orjson.dumps(chunk), usage)
            finally:
                await events.close()

    async def models(self) -> list[ModelInfo]:
        ids = self.config.models or [DEFAULT_MODEL]
        return [ModelInfo(id=i, backend=self.name, supports_tools=True, supports_vision=True) for i in ids]

    async def health(self) -> BackendHealth:
        if self.missing_setting:
            return BackendHealth(ok=False, detail=f"{self.missing_setting} is not set")
        models = self.config.models or [DEFAULT_MODEL]
        return BackendHealth(ok=True, detail=f"{len(models)} models configured", extra={"cloud": True})

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = None
