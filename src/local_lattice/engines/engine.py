"""The shared body of the in-process backends (``llamacpp``, ``mlx``).

Owns the model catalog (discovery, cached), residency through the shared ``ModelManager``,
prompt preparation (chat template, context check or trim), the answer's shape (tools, JSON mode:
``engines.structured``, honoured only by a ``SchemaDecoding`` engine) and the token loop that
turns engine steps into OpenAI answers, text or ``tool_calls``. An engine subclass supplies only the
blocking hooks (open, close, encode, token steps), which always run in the engine's worker
threads, never on the event loop. Foreign exceptions become ``local_lattice.errors`` here.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import AsyncGenerator, Iterator, Mapping
from concurrent.futures import Executor
from contextlib import aclosing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

from local_lattice.config import BackendConfig, EngineConfig
from local_lattice.engines.answers import ChunkWriter, new_id, tool_call, whole
from local_lattice.engines.calls import EnvelopeReader
from local_lattice.engines.decoding import Delta, Plan, decode_planned
from local_lattice.engines.discovery import LocalModel, ModelFormat, default_roots, discover
from local_lattice.engines.failures import is_oom
from local_lattice.engines.pump import pump
from local_lattice.engines.residency import LoadSpec, ModelManager
from local_lattice.engines.sampling import Sampling, StopMatcher, sampling_of
from local_lattice.engines.structured import Shape, asked_field, chat_turns, shape_of
from local_lattice.errors import ContextTooLong, InvalidRequest, LatticeError, ModelNotFound, NotFound, UpstreamError
from local_lattice.types import (
    BackendHealth,
    BackendRequest,
    BackendResponse,
    ChunkStream,
    JSONObject,
    LoadProgress,
    ModelInfo,
    StreamChunk,
    Usage,
)

log = logging.getLogger("lattice.engines")

H = TypeVar("H")
Message = dict[str, str]


@dataclass(eq=False)
class Loaded(Generic[H]):
    """A resident model: the engine's object, its context length and a lock (engines are not re-entrant).
    ``stop`` is the running generation's stop signal (set while the lock is held), for an engine that
    can abort a step half-way (llama.cpp's abort callback: a long prompt is one long step)."""

    model: H
    n_ctx: int
    lock: threading.Lock
    stop: threading.Event | None = None


@dataclass(frozen=True)
class Shared:
    """What all in-process backends of one gateway share."""

    engines: EngineConfig
    manager: ModelManager
    env: Mapping[str, str]
    default_max_tokens: int = 1024  # routing's DEFAULT_MAX_TOKENS; routing normally sets max_tokens itself


def text_of(content: Any) -> str:
    if content is None or isinstance(content, str):
        return content or ""
    parts = []
    for part in content:
        if part.get("type") != "text":
            raise InvalidRequest(f"this local model takes text only, not {part.get('type')!r} parts", param="messages")
        parts.append(str(part.get("text", "")))
    return "".join(parts)


class SchemaDecoding(ABC):
    """An engine that can hold decoding to a JSON schema (tools, JSON mode); others refuse them."""

    @abstractmethod
    def compile_schema(self, schema: JSONObject, param: str) -> Any:
        """The engine's constraint for ``schema``; ``InvalidRequest(param=param)`` if it cannot be held to."""


class EngineBackend(ABC, Generic[H]):
    format: ModelFormat = "gguf"
    engine: str = "engine"

    def __init__(self, config: BackendConfig, shared: Shared, executor: Executor) -> None:
        self.name = config.name
        self.config = config
        self.settings = shared.engines
        self.manager = shared.manager
        self.env = shared.env
        self.default_max_tokens = shared.default_max_tokens
        self.executor = executor
        self._catalog: dict[str, LocalModel] = {}
        self._catalog_at = -1e18
        self._catalog_lock = asyncio.Lock()

    # -- hooks each engine implements: blocking, called in a worker thread -------------------------

    @abstractmethod
    def open_model(self, model: LocalModel) -> Loaded[H]: ...

    @abstractmethod
    def close_model(self, loaded: Loaded[H]) -> None: ...

    @abstractmethod
    def encode_chat(self, loaded: Loaded[H], messages: list[Message]) -> list[int]: ...

    @abstractmethod
    def encode_text(self, loaded: Loaded[H], prompt: str) -> list[int]: ...

    @abstractmethod
    def token_steps(
        self, loaded: Loaded[H], tokens: list[int], sampling: Sampling, constraint: Any = None
    ) -> Iterator[str | None]:
        """Text of each generated token as it comes; ``None`` for end-of-sequence. ``constraint``
        is what ``SchemaDecoding.compile_schema`` made (never set for other engines)."""
        ...

    # -- catalog ----------------------------------------------------------------------------------

    def _scan(self) -> list[LocalModel]:
        paths = [Path(p).expanduser() for p in self.config.model_paths]
        if self.config.discover:
            paths += default_roots(self.env, self.settings.model_root)
        return [m for m in discover(paths, self.config.model_files) if m.format == self.format]

    async def catalog(self) -> dict[str, LocalModel]:
        if time.monotonic() - self._catalog_at < self.config.model_list_ttl and self._catalog:
            return self._catalog
        async with self._catalog_lock:
            if time.monotonic() - self._catalog_at >= self.config.model_list_ttl or not self._catalog:
                found = await asyncio.to_thread(self._scan)
                self._catalog = {m.id: m for m in found}
                self._catalog_at = time.monotonic()
        return self._catalog

    def forget_models(self) -> None:
        """The next catalog read scans the folders again (a rescan picks up files added or removed)."""
        self._catalog_at = -1e18

    async def models(self) -> list[ModelInfo]:
        # Resident models report loaded=True, the others loaded=False; all load on demand, so routing
        # keeps them eligible under strict loading while preferring what is resident.
        resident = set(self.resident())
        shaped = isinstance(self, SchemaDecoding)  # tools and JSON mode are honoured only then
        return [
            ModelInfo(
                id=m.id,
                backend=self.name,
                size_bytes=m.size_bytes,
                loaded=m.id in resident,
                loads_on_demand=True,
                supports_tools=shaped,
                supports_json_mode=shaped,
            )
            for m in (await self.catalog()).values()
        ]

    @property
    def residency(self) -> int:
        return self.manager.residency

    def resident(self) -> list[str]:
        """Ids of this backend's models that are loaded now, least recently used first."""
        prefix = self.name + "/"
        return [r["key"][len(prefix) :] for r in self.manager.resident() if r["key"].startswith(prefix)]

    def key(self, model_id: str) -> str:
        return f"{self.name}/{model_id}"

    async def local_model(self, model_id: str) -> LocalModel:
        catalog = await self.catalog()
        model = catalog.get(model_id) or catalog.get(model_id.lower())
        if model is None:
            raise ModelNotFound(f"model {model_id!r} is not on backend {self.name!r}", param="model")
        return model

    def spec(self, model: LocalModel) -> LoadSpec[Loaded[H]]:
        loop_executor = self.executor

        async def open_() -> Loaded[H]:
            if not model.path.exists():
                raise FileNotFoundError(f"{model.path} does not exist")
            return await asyncio.get_running_loop().run_in_executor(loop_executor, self.open_model, model)

        async def close(loaded: Loaded[H]) -> None:
            await asyncio.get_running_loop().run_in_executor(loop_executor, self.close_model, loaded)

        return LoadSpec(self.key(model.id), model.size_bytes, open_, close, model.path)

    # -- ModelLoader ------------------------------------------------------------------------------

    async def load(self, model: str) -> None:
        await self.manager.ensure_loaded(self.spec(await self.local_model(model)))

    async def unload(self, model: str) -> bool:
        result = await self.manager.unload(self.key((await self.local_model(model)).id))
        if result == "absent":
            raise NotFound(f"model {model!r} is not loaded", code="model_not_loaded")
        return result == "dropped"

    async def start(self, progress: LoadProgress | None = None) -> None:
        """Preload the configured models with a short self-test; failures are logged and remembered."""
        catalog = await self.catalog()
        for model_id in self.settings.preload:
            if model_id not in catalog:
                continue
            request = BackendRequest("completions", model_id, {"prompt": "Hello", "max_tokens": 4, "temperature": 0})
            if progress is not None:
                progress.loading(self.key(model_id))
            started = time.monotonic()
            try:
                await self.complete(request)
                log.info("preloaded %s/%s (self-test passed)", self.name, model_id)
                if progress is not None:
                    progress.loaded(self.key(model_id), time.monotonic() - started)
            except LatticeError as exc:
                self.manager.load_errors.setdefault(self.key(model_id), exc.message)
                log.warning("preload of %s/%s failed: %s", self.name, model_id, exc.message)
                if progress is not None:
                    progress.failed(self.key(model_id), exc.message)

    # -- generation -------------------------------------------------------------------------------

    async def complete(self, request: BackendRequest) -> BackendResponse:
        sampling = sampling_of(request.body, self.default_max_tokens)
        plan = await self._plan(request)
        parts: list[str] = []
        reader: EnvelopeReader | None = None
        last = Delta("", 0, 0, "length")
        async with aclosing(self._generate(request, sampling, plan)) as deltas:
            async for delta in deltas:
                if delta.call:
                    reader = reader or EnvelopeReader()
                    reader.feed(delta.text)
                else:
                    parts.append(delta.text)
                last = delta
        usage = Usage(last.prompt_tokens, last.completion_tokens)
        answer_id = new_id(request.endpoint)
        finish = last.finish or "length"
        calls = None
        if reader is not None and reader.name is not None:
            reader.close()
            calls = [tool_call(reader.id, reader.name, reader.arguments)]
            finish = "tool_calls" if finish == "stop" else finish
        elif reader is not None:  # cut off before the call's name: say what was written
            parts.append(reader.pending)
        return whole(request.endpoint, answer_id, request.model, "".join(parts), finish, usage, calls)

    def stream(self, request: BackendRequest) -> ChunkStream:
        return self._stream(request)

    async def _stream(self, request: BackendRequest) -> AsyncGenerator[StreamChunk, None]:
        sampling = sampling_of(request.body, self.default_max_tokens)
        plan = await self._plan(request)
        writer = ChunkWriter(request.endpoint, request.model)
        reader: EnvelopeReader | None = None
        opened = False
        async with aclosing(self._generate(request, sampling, plan)) as deltas:
            async for delta in deltas:
                if not opened and request.endpoint == "chat":
                    yield writer.opening()
                opened = True
                finish = delta.finish
                if delta.call:
                    reader = reader or EnvelopeReader()
                    for chunk in self._call_chunks(writer, reader, delta):
                        yield chunk
                    if finish == "stop" and reader.name is not None:
                        finish = "tool_calls"
                elif delta.text:
                    yield writer.text(delta.text)
                if finish is not None:
                    yield writer.finish(finish)
                    if sampling.include_usage:
                        yield writer.usage(Usage(delta.prompt_tokens, delta.completion_tokens))

    @staticmethod
    def _call_chunks(writer: ChunkWriter, reader: EnvelopeReader, delta: Delta) -> Iterator[StreamChunk]:
        """The ``tool_calls`` deltas of one step of a call: its opening once the name is known,
        then its arguments; at the end, the rest (or the text, if it never became a call)."""
        name, arguments = reader.feed(delta.text)
        if name is not None:
            yield writer.call_opening(0, reader.id, name)
        if arguments:
            yield writer.call_arguments(0, arguments)
        if delta.finish is None:
            return
        if reader.name is None:
            if reader.pending:
                yield writer.text(reader.pending)
            return
        tail = reader.close()
        if tail:
            yield writer.call_arguments(0, tail)

    async def _plan(self, request: BackendRequest) -> Plan | None:
        """The request's shape with its schemas compiled; a 400 for what this engine cannot honour."""
        shape = shape_of(request.body)
        if shape is None:
            return None
        if not isinstance(self, SchemaDecoding):
            field = asked_field(request.body)
            raise InvalidRequest(
                f"backend {self.name!r} ({self.engine}) cannot constrain decoding, so it cannot honour "
                f"{field}; send it to a GGUF (llama.cpp) model",
                param=field,
            )
        if request.endpoint != "chat" and shape.mode != "none":
            raise InvalidRequest("tools need the chat completions endpoint", param="tools")
        return await asyncio.to_thread(self._compile, self, shape)

    @staticmethod
    def _compile(engine: SchemaDecoding, shape: Shape) -> Plan:
        call_schema = shape.call_schema
        call = engine.compile_schema(call_schema, "tools") if call_schema is not None else None
        text = engine.compile_schema(shape.text_schema, "response_format") if shape.text_schema is not None else None
        either = None
        if call_schema is not None and shape.text_schema is not None and shape.mode == "auto":
            either = engine.compile_schema({"anyOf": [call_schema, shape.text_schema]}, "response_format")
        return Plan(shape, call, text, either)

    async def _generate(
        self, request: BackendRequest, sampling: Sampling, plan: Plan | None
    ) -> AsyncGenerator[Delta, None]:
        model = await self.local_model(request.model)
        # Admission caps calls per model before they get here; the engine itself only needs the
        # model pinned (and its lock, taken in the worker) for as long as the worker uses it.
        lease = await self.manager.acquire(self.spec(model))

        def produce(stop: threading.Event) -> Iterator[Delta]:
            return self._produce(lease.handle, request, sampling, plan, stop)

        async with aclosing(pump(self.executor, produce, lease.release)) as deltas:
            async for delta in deltas:
                yield delta

    def _produce(
        self, loaded: Loaded[H], request: BackendRequest, sampling: Sampling, plan: Plan | None, stop: threading.Event
    ) -> Iterator[Delta]:
        while not loaded.lock.acquire(timeout=0.05):
            if stop.is_set():
                return
        loaded.stop = stop
        try:
            tokens = self._prompt(loaded, request, sampling.max_tokens, plan)

            def decode(constraint: Any, call: bool) -> Iterator[Delta]:
                return self._decode(loaded, tokens, sampling, constraint, call, stop)

            yield from decode_planned(plan, decode)
        except LatticeError:
            raise
        except Exception as exc:
            detail = str(exc) or type(exc).__name__
            hint = "; the model ran out of memory: lower n_ctx or MAX_CONCURRENT_MODELS" if is_oom(exc) else ""
            raise UpstreamError(f"{self.engine} generation failed: {detail}{hint}", backend=self.name) from exc
        finally:
            loaded.stop = None
            loaded.lock.release()

    def _decode(
        self,
        loaded: Loaded[H],
        tokens: list[int],
        sampling: Sampling,
        constraint: Any,
        call: bool,
        stop: threading.Event,
    ) -> Iterator[Delta]:
        prompt = len(tokens)
        budget = min(sampling.max_tokens, loaded.n_ctx - prompt)
        matcher = StopMatcher(() if call else sampling.stop)  # stop strings end text, never a call
        count = 0
        steps = self.token_steps(loaded, tokens, sampling, constraint)
        try:
            for piece in steps:
                if stop.is_set():
                    return
                if piece is None:
                    yield Delta(matcher.flush(), prompt, count, "stop", call)
                    return
                count += 1
                text, hit = matcher.feed(piece)
                if hit:
                    yield Delta(text, prompt, count, "stop", call)
                    return
                if count >= budget:
                    yield Delta(text + matcher.flush(), prompt, count, "length", call)
                    return
                if text:
                    yield Delta(text, prompt, count, None, call)
            yield Delta(matcher.flush(), prompt, count, "length", call)
        finally:
            close = getattr(steps, "close", None)
            if close is not None:
                close()

    # -- prompts ----------------------------------------------------------------------------------

    def _prompt(self, loaded: Loaded[H], request: BackendRequest, answer_tokens: int, plan: Plan | None) -> list[int]:
        body = request.body
        limit = loaded.n_ctx - 1  # at least one token of room for the answer
        trim = self.settings.context_over_budget == "trim"
        # Trimming leaves room for the answer (at most half the context) and the buffer's slack.
        room = min(answer_tokens, loaded.n_ctx // 2) + self.settings.context_trim_buffer
        target = max(1, loaded.n_ctx - room)
        if request.endpoint == "chat":
            messages = chat_turns(body["messages"], text_of, plan.shape.note() if plan is not None else None)
            tokens = self.encode_chat(loaded, messages)
            while trim and len(tokens) > target and self._drop_oldest_turn(messages):
                tokens = self.encode_chat(loaded, messages)
        elif request.endpoint == "completions":
            prompt = body.get("prompt")
            if isinstance(prompt, list):
                if len(prompt) != 1:
                    raise InvalidRequest("local engines take one prompt per request", param="prompt")
                prompt = prompt[0]
            tokens = self.encode_text(loaded, str(prompt))
        else:
            raise InvalidRequest(f"backend {self.name!r} does not serve embeddings", param="model")
        if len(tokens) > limit:
            if not trim:
                raise ContextTooLong(
                    f"the prompt is {len(tokens)} tokens but {request.model!r} has a context of {loaded.n_ctx} "
                    f"tokens (at most {limit} for the prompt); shorten it or set MLX_CONTEXT_OVER_BUDGET=trim",
                    param="messages" if request.endpoint == "chat" else "prompt",
                    extra={"prompt_tokens": len(tokens), "context_length": loaded.n_ctx},
                )
            tokens = tokens[len(tokens) - min(target, limit) :]
        return tokens

    @staticmethod
    def _drop_oldest_turn(messages: list[Message]) -> bool:
        turns = [i for i, m in enumerate(messages) if m["role"] not in ("system", "developer")]
        if len(turns) <= 1:
            return False
        del messages[turns[0]]
        return True

    # -- health / shutdown ------------------------------------------------------------------------

    async def health(self) -> BackendHealth:
        prefix = self.name + "/"
        errors = {k[len(prefix) :]: v for k, v in self.manager.load_errors.items() if k.startswith(prefix)}
        resident = self.resident()
        detail = f"{self.engine}: {len(resident)} model(s) loaded"
        if errors:
            detail += f", {len(errors)} load error(s)"
        rows = [r for r in self.manager.resident() if r["key"].startswith(prefix)]
        busy = {r["key"][len(prefix) :]: r["pins"] for r in rows}
        extra = {
            "loaded": resident,
            "in_flight": {k: v for k, v in busy.items() if v},
            "load_errors": errors,
            # What `lattice ps` shows of each resident model: memory, where it runs, how it leaves.
            "resident": [
                {"model": r["key"][len(prefix) :], "size_bytes": r["size_bytes"], "idle_s": r["idle_s"]} for r in rows
            ],
            "device": self.device(),
            "engine": self.engine,
            "residency": {
                "max_models": self.manager.max_models,
                "memory_budget_bytes": self.manager.memory_budget_bytes,
                "idle_timeout_s": None,  # models stay until evicted (least recently used first) or unloaded
            },
        }
        return BackendHealth(ok=True, detail=detail, extra=extra)

    def device(self) -> str:
        """Where this engine computes: ``cpu`` unless the engine says otherwise."""
        return "cpu"

    async def aclose(self) -> None:
        await self.manager.unload_all(self.name + "/")
        self.executor.shutdown(wait=False, cancel_futures=True)
