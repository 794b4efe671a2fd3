"""The swarm runner: runs agent calls in parallel (``max_parallel``), each bounded by the per-call
timeout and the request's overall deadline, and turns each outcome into a ``Candidate``.

``SwarmRunner.call`` is the one door every agent, judge and aggregator call passes: it routes the
spec, enters the admission hook with the parent's priority and deadline, and runs the backend.
Cancelling a call (first-success losers, client disconnects) closes its upstream request at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import Any, Protocol

import orjson

from local_lattice.backends.base import Backend
from local_lattice.config import SwarmConfig
from local_lattice.errors import LatticeError, UpstreamError
from local_lattice.routing.inventory import Inventory
from local_lattice.routing.resolver import Resolution
from local_lattice.swarm.candidates import EMPTY_HINT, Candidate, classify
from local_lattice.swarm.specs import AgentSpec, CallContext
from local_lattice.types import BackendResponse, ChunkStream, Endpoint, JSONObject, ModelInfo, StreamChunk, Usage

log = logging.getLogger("lattice.swarm")

OnText = Callable[[Candidate, str], None]
Admit = Callable[[CallContext, ModelInfo], AbstractAsyncContextManager[None]]


class RoutedModel(Protocol):
    """What the runner needs of a routed model: its backend and model."""

    @property
    def backend(self) -> Backend: ...

    @property
    def model(self) -> ModelInfo: ...

    @property
    def resolution(self) -> Resolution: ...


class Router(Protocol):
    """The gateway seam the swarm needs: turn a spec into a backend + model; read the inventory."""

    @property
    def inventory(self) -> Inventory: ...

    async def route(self, endpoint: Endpoint, spec: Any) -> RoutedModel: ...

    # Running goes through the gateway too, so calls fail over, are billed and admitted like any request.
    async def complete(self, routed: Any, endpoint: Endpoint, body: JSONObject) -> tuple[Any, BackendResponse]: ...

    async def stream(
        self, routed: Any, endpoint: Endpoint, body: JSONObject
    ) -> tuple[Any, StreamChunk | None, ChunkStream]: ...


class TextSink(Protocol):
    """Where a streamed final answer goes as it is generated (the chat stream's producer side)."""

    def start(self, model: str) -> None: ...

    def push(self, text: str) -> None: ...

    @property
    def started(self) -> bool: ...


@dataclass(frozen=True, slots=True)
class Job:
    """One call to make: who (``agent_id``, ``spec``), what (messages) and the request's sampling fields."""

    agent_id: str
    spec: AgentSpec
    messages: Sequence[JSONObject]
    params: JSONObject = field(default_factory=dict)

    def body(self) -> JSONObject:
        messages = list(self.spec.messages or self.messages)
        if self.spec.system is not None:
            messages = [{"role": "system", "content": self.spec.system}, *messages]
        return {**self.params, **self.spec.overrides, "messages": messages}


@contextlib.asynccontextmanager
async def no_admission(ctx: CallContext, model: ModelInfo) -> AsyncIterator[None]:
    yield


def message_text(data: Any) -> str:
    """The assistant text of a chat.completion object ('' when there is none)."""
    try:
        content = data["choices"][0]["message"].get("content")
    except (KeyError, IndexError, TypeError, AttributeError):
        return ""
    if isinstance(content, list):
        return "".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return content if isinstance(content, str) else ""


def finish_of(data: Any) -> str | None:
    """The first choice's ``finish_reason`` of a chat.completion (or chunk) object, if it has one."""
    try:
        reason = data["choices"][0].get("finish_reason")
    except (KeyError, IndexError, TypeError, AttributeError):
        return None
    return reason if isinstance(reason, str) else None


def delta_of(payload: bytes) -> tuple[str, str | None]:
    """A chunk's text and its ``finish_reason`` (``("", None)`` for a chunk with neither)."""
    try:
        data = orjson.loads(payload)
        content = data["choices"][0]["delta"].get("content")
    except (orjson.JSONDecodeError, KeyError, IndexError, TypeError, AttributeError):
        return "", None
    return (content if isinstance(content, str) else ""), finish_of(data)


class SwarmRunner:
    """Runs the calls of a swarm over routed backends, each within its time budget and admission,
    and reports each as a ``Candidate``; a failed call is a failed candidate, never an exception."""

    def __init__(
        self,
        router: Router,
        settings: SwarmConfig,
        *,
        admit: Admit | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.router = router
        self.settings = settings
        self.admit: Admit = admit or no_admission
        self.rng = rng or random.Random()

    def _budget(self, job: Job, ctx: CallContext) -> float:
        budget = job.spec.timeout or self.settings.per_call_timeout
        remaining = ctx.remaining()
        return budget if remaining is None else min(budget, remaining)

    async def call(self, job: Job, ctx: CallContext, on_text: OnText | None = None) -> Candidate:
        """Run one call to the end and report it as a candidate; it never raises for a failed call
        (cancellation still propagates). ``on_text`` makes it stream and hands over each delta."""
        started = time.perf_counter()
        cand = Candidate(job.agent_id, job.spec.model, spec=job.spec.model)
        try:
            budget = self._budget(job, ctx)
            if budget <= 0:
                raise TimeoutError
            async with asyncio.timeout(budget):
                routed = await self.router.route("chat", job.spec.model)
                self._note_route(cand, routed)
                async with self.admit(ctx, routed.model):
                    if on_text is None:
                        await self._complete(routed, job.body(), cand)
                    else:
                        await self._stream(routed, job.body(), cand, on_text)
            if cand.text.strip():
                cand.ok = True
            else:
                cand.error, cand.error_kind = "the model answered with empty content", "empty_response"
                cand.error_detail = f"{cand.error}: {EMPTY_HINT}"
        except (LatticeError, TimeoutError) as exc:
            self._failed(cand, exc, job)
        except Exception as exc:  # a foreign exception from a backend must not sink the whole swarm
            log.exception("swarm call %s failed", job.agent_id)
            self._failed(cand, exc, job)
        finally:
            cand.latency_ms = (time.perf_counter() - started) * 1000
        return cand

    def _failed(self, cand: Candidate, exc: BaseException, job: Job) -> None:
        kind, status = classify(exc)
        cand.ok = False
        cand.error_kind, cand.http_status = kind, status
        if isinstance(exc, LatticeError):
            cand.error = exc.message
            cand.error_type, cand.error_code = exc.type, exc.code
        elif isinstance(exc, TimeoutError):
            cand.error = f"no answer within {self._budget(job, CallContext()):.1f}s or the swarm deadline"
        else:
            cand.error = f"{type(exc).__name__}: {exc}"
        cand.error_detail = cand.error

    @staticmethod
    def _note_route(cand: Candidate, routed: RoutedModel) -> None:
        cand.model = routed.model.id
        cand.routed_to = f"{routed.model.backend}/{routed.model.id}"
        cand.resolution = routed.resolution.explanation or None  # a fallback says so, as on any route

    async def _complete(self, routed: RoutedModel, body: JSONObject, cand: Candidate) -> None:
        final, answer = await self.router.complete(routed, "chat", body)
        self._note_route(cand, final)
        try:
            data = orjson.loads(answer.content)
        except orjson.JSONDecodeError:
            raise UpstreamError("the backend answered something not JSON", backend=final.model.backend) from None
        cand.response = data if isinstance(data, dict) else None
        cand.text = message_text(data)
        cand.finish_reason = finish_of(data)
        cand.usage = answer.usage or Usage()

    async def _stream(self, routed: RoutedModel, body: JSONObject, cand: Candidate, on_text: OnText) -> None:
        body["stream"] = True
        prompt = completion = 0
        parts: list[str] = []
        final, first, rest = await self.router.stream(routed, "chat", body)
        self._note_route(cand, final)

        async def chunks() -> AsyncIterator[StreamChunk]:
            if first is not None:
                yield first
            async for chunk in rest:
                yield chunk

        try:
            async for chunk in chunks():
                if chunk.usage is not None:
                    prompt, completion = chunk.usage.prompt_tokens, chunk.usage.completion_tokens
                piece, finish = delta_of(chunk.payload)
                cand.finish_reason = finish or cand.finish_reason
                if piece:
                    parts.append(piece)
                    cand.text = "".join(parts)
                    on_text(cand, piece)
        finally:
            await rest.aclose()
        cand.usage = Usage(prompt, completion)

    async def gather(self, jobs: Sequence[Job], ctx: CallContext, max_parallel: int | None = None) -> list[Candidate]:
        """Run every job, at most ``max_parallel`` at once; results keep the jobs' order."""
        gate = asyncio.Semaphore(max_parallel or self.settings.max_parallel)

        async def one(job: Job) -> Candidate:
            async with gate:
                return await self.call(job, ctx)

        return list(await asyncio.gather(*(one(job) for job in jobs)))

    async def first_success(
        self,
        jobs: Sequence[Job],
        ctx: CallContext,
        max_parallel: int | None = None,
        sink: TextSink | None = None,
    ) -> tuple[Candidate | None, list[Candidate]]:
        """The first good answer; every other call is cancelled (its upstream request closed) at once.

        With a ``sink`` the calls stream and the first to produce text becomes the winner and is
        relayed as it generates; the others are cancelled at that moment."""
        gate = asyncio.Semaphore(max_parallel or self.settings.max_parallel)
        tasks: list[asyncio.Task[Candidate]] = []
        leader: list[int] = []

        def relay(index: int) -> OnText:
            def on_text(cand: Candidate, piece: str) -> None:
                if sink is None:
                    return
                if not leader and piece.strip():
                    leader.append(index)
                    sink.start(cand.model)
                    for other, task in enumerate(tasks):
                        if other != index:
                            task.cancel()
                if leader and leader[0] == index:
                    sink.push(piece)

            return on_text

        async def one(index: int, job: Job) -> Candidate:
            async with gate:
                return await self.call(job, ctx, relay(index) if sink is not None else None)

        tasks.extend(asyncio.create_task(one(i, job)) for i, job in enumerate(jobs))
        winner = await self._first_ok(tasks)
        return winner, [self._settled(task, job) for task, job in zip(tasks, jobs, strict=True)]

    @staticmethod
    async def _first_ok(tasks: list[asyncio.Task[Candidate]]) -> Candidate | None:
        pending: set[asyncio.Task[Candidate]] = set(tasks)
        winner: Candidate | None = None
        try:
            while pending and winner is None:
                done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                finished = [t for t in tasks if t in done and not t.cancelled()]
                winner = next((t.result() for t in finished if t.result().ok), None)
        finally:
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        return winner

    @staticmethod
    def _settled(task: asyncio.Task[Candidate], job: Job) -> Candidate:
        if task.cancelled():
            return Candidate(
                job.agent_id,
                job.spec.model,
                error="cancelled: another agent answered first",
                cancelled=True,
                spec=job.spec.model,
            )
        return task.result()
