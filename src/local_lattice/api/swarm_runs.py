"""What the swarm routes run: the plan from the body, the runner whose every call is admitted,
the recording of the run and the answer as JSON or SSE (via ``api/sse.py``).

Imported by ``api/routes_swarm.py`` on the first swarm request, with the swarm package: a gateway
that never runs a swarm does not import it.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from local_lattice.admission import QueueContext
from local_lattice.api.dispatch import gateway_of
from local_lattice.api.lifeline import Lifeline
from local_lattice.api.payload import json_response, read_json, validate
from local_lattice.api.sse import SSEResponse, sse_bytes
from local_lattice.errors import InvalidRequest, LatticeError, ModelNotFound
from local_lattice.gateway import Gateway
from local_lattice.observability.record import RequestRecord
from local_lattice.protocol.openai import whole_number
from local_lattice.protocol.swarm import (
    DEPRECATED,
    MAX_SAMPLES,
    META_MODELS,
    DebateRequest,
    PipelineRequest,
    SwarmRequest,
)
from local_lattice.swarm.debate import DebatePlan, run_debate
from local_lattice.swarm.outcome import SwarmOutcome
from local_lattice.swarm.pipeline import parse_steps, run_pipeline
from local_lattice.swarm.runner import SwarmRunner, TextSink
from local_lattice.swarm.specs import SENTINELS, AgentSpec, CallContext, expand, parse_agents
from local_lattice.swarm.strategies import VotePlan, run_vote, strategy_name
from local_lattice.swarm.streaming import ChunkMaker, stream_swarm
from local_lattice.types import JSONObject, ModelInfo, StreamChunk

# Body fields that steer the swarm; every other field is passed to each agent as sent.
_SWARM_FIELDS = frozenset(
    {"model", "models", "messages", "strategy", "judge", "judge_system", "max_parallel", "stream", "stream_options",
     "steps", "rounds", "swarm", "queue", "input", "prompt", "n", "samples"}
)  # fmt: skip
# A debate that names no debaters argues among the roles, as in the original.
DEFAULT_DEBATERS = ("role:reasoner", "role:fast", "role:coder")
_json = json_response
_gateway = gateway_of
_body = read_json


def _messages(body: JSONObject, *, allow_input: bool = False) -> list[JSONObject]:
    messages = body.get("messages")
    if messages is None and allow_input:
        text = body.get("input") if body.get("input") is not None else body.get("prompt")
        if isinstance(text, str) and text.strip():
            return [{"role": "user", "content": text}]
    if not isinstance(messages, list) or not messages or not all(isinstance(m, dict) for m in messages):
        raise InvalidRequest("'messages' is required: a non-empty list of message objects", param="messages")
    return messages


def _params(body: JSONObject) -> JSONObject:
    return {k: v for k, v in body.items() if k not in _SWARM_FIELDS}


def _max_parallel(raw: Any, name: str = "max_parallel", most: int | None = None) -> int | None:
    if raw is None:
        return None
    number = whole_number(raw)
    if number is None or number < 1 or (most is not None and number > most):
        limit = f" of at most {most}" if most is not None else ""
        raise InvalidRequest(f"'{name}' must be a positive integer{limit}", param=name)
    return number


def _samples(raw: Any) -> int | None:
    return _max_parallel(raw, "samples", MAX_SAMPLES)


def _judge(raw: Any, default: str | None) -> AgentSpec | None:
    if raw is None:
        raw = default
    if raw is None or (isinstance(raw, str) and not raw.replace(",", "").strip()):
        return None  # no judge named: the strategy's default
    return parse_agents(raw if isinstance(raw, dict) else str(raw), "judge")[0]


def _default_judge(gateway: Gateway, strategy: str) -> str | None:
    """Self-MoA's sampled model merges its own drafts: no default judge for it."""
    return None if strategy == "self-moa" else gateway.config.swarm.chat_default_judge


async def _agents(gateway: Gateway, raw: Any, cap: int = 0) -> list[AgentSpec]:
    agents = parse_agents(raw)
    snapshot = await gateway.inventory.snapshot()
    return expand(agents, snapshot.models, cap)


def _runner(gateway: Gateway, request: Request) -> SwarmRunner:
    """A runner whose every agent, judge and aggregator call is admitted like a request of its own,
    with the parent's priority, deadline and client (the original admitted none of them)."""
    client = gateway.admission.context(None, request.headers).client

    @asynccontextmanager
    async def admit(ctx: CallContext, model: ModelInfo) -> AsyncIterator[None]:
        queue = QueueContext(priority=ctx.priority, deadline=ctx.deadline, client=client)
        async with gateway.admission.admit(model.id, model.backend, queue) as grant:
            # The calls run side by side: the swarm waited as long as its longest wait.
            record = request.scope["state"].get("record")
            if isinstance(record, RequestRecord):
                record.timings.queue = max(record.timings.queue, grant.waited)
            yield

    return SwarmRunner(gateway, gateway.config.swarm, admit=admit)


def _ctx(gateway: Gateway, request: Request, body: JSONObject) -> CallContext:
    """Priority and deadline from the body's ``queue{}`` or the queue headers (validated as for any
    request), the deadline capped by the swarm's own overall timeout."""
    queue = gateway.admission.context(body.get("queue"), request.headers)
    life = Lifeline.of(request.scope)
    if life is not None and queue.deadline is not None:
        life.bound(queue.deadline)  # the client's deadline bounds the whole swarm
    cap = time.monotonic() + gateway.config.swarm.fanout_timeout
    deadline = cap if queue.deadline is None else min(queue.deadline, cap)
    return CallContext(priority=queue.priority, deadline=deadline)


def _record(request: Request) -> RequestRecord:
    """The request's record: the one ``/v1/chat/completions`` opened for a swarm meta-model (one
    request, one record, one in-flight count), else a new one."""
    state = request.scope["state"]
    record = state.get("record")
    if isinstance(record, RequestRecord) and not record.done:
        record.operation = "swarm"
        return record
    return _gateway(request).observer.begin(state, request.scope["path"], "swarm")


async def _respond(
    request: Request,
    body: JSONObject,
    run: Callable[[TextSink | None], Awaitable[SwarmOutcome]],
    headers: dict[str, str],
    render: Callable[[SwarmOutcome], JSONObject] = SwarmOutcome.completion,
) -> Response | SSEResponse:
    """JSON, or SSE when the body asks to stream; errors before the first chunk keep their status.
    The run is recorded like any request (metrics, ledger, dashboard) plus its swarm details. Its
    timings: resolve = building the plan, queue = the longest wait of its calls, upstream = the run
    (on a stream: until the first chunk, as for any stream)."""
    observer = _gateway(request).observer
    record = _record(request)
    observer.requested(record, body)
    timings = record.timings
    started = time.perf_counter()
    timings.resolve = started - timings.started

    async def observed(sink: TextSink | None) -> SwarmOutcome:
        outcome = await run(sink)
        timings.upstream = time.perf_counter() - started
        outcome.elapsed_ms = timings.upstream * 1000
        observer.routed(record, outcome.winner_model or "", "swarm")
        usage = outcome.usage()
        record.input_tokens, record.output_tokens = usage.prompt_tokens, usage.completion_tokens
        observer.swarm_run(outcome.dashboard_run(record.request_id))
        return outcome

    if not body.get("stream"):
        outcome = await observed(None)
        life = Lifeline.of(request.scope)
        if life is not None:
            life.check()
        observer.finish(record, 200)
        return _json(render(outcome), headers={**headers, **outcome.headers(), **timings.headers()})
    maker = ChunkMaker()
    stream = stream_swarm(observed, _gateway(request).config.swarm.stream_chunk_chars, maker)
    try:
        first: StreamChunk | None = await stream.__anext__()
    except StopAsyncIteration:
        first = None
    except BaseException:
        await stream.aclose()
        raise
    record.stream = True
    record.ttft = timings.total()
    if not timings.upstream:
        timings.upstream = time.perf_counter() - started  # relayed live: the time to its first chunk
    headers = {**headers, "X-Model-Routed-To": maker.model}
    if headers.get("X-Swarm-Strategy") != "fanout":
        headers["X-Swarm-Winner"] = maker.model.removeprefix("swarm/")

    def closed(status: int, error_kind: str | None) -> None:
        timings.upstream = time.perf_counter() - started
        observer.finish(record, status, error_kind)

    return SSEResponse(sse_bytes(first, stream), {**headers, **timings.headers()}, on_close=closed)


async def vote(request: Request) -> Response | SSEResponse:
    _record(request)  # first, so a request refused for its body is counted too
    gateway = _gateway(request)
    body = await _body(request)
    typed = validate(SwarmRequest, body)
    strategy = strategy_name(body.get("strategy"))
    plan = VotePlan(
        agents=await _agents(gateway, body.get("models")),
        messages=_messages(body),
        params=_params(body),
        strategy=strategy,
        judge=_judge(body.get("judge"), _default_judge(gateway, strategy)),
        judge_system=body.get("judge_system"),
        max_parallel=_max_parallel(body.get("max_parallel")),
        samples=typed.samples,
    )
    runner, ctx = _runner(gateway, request), _ctx(gateway, request, body)
    return await _respond(
        request, body, lambda sink: run_vote(runner, plan, ctx, sink), {"X-Swarm-Strategy": plan.strategy}
    )


async def fanout(request: Request) -> Response | SSEResponse:
    _record(request)  # first, so a request refused for its body is counted too
    gateway = _gateway(request)
    body = await _body(request)
    validate(SwarmRequest, body)
    plan = VotePlan(
        agents=await _agents(gateway, body.get("models")),
        messages=_messages(body),
        params=_params(body),
        strategy="fanout",
        max_parallel=_max_parallel(body.get("max_parallel")),
    )
    runner, ctx = _runner(gateway, request), _ctx(gateway, request, body)
    body["stream"] = False  # all answers at once: there is no single answer to stream

    async def run(sink: TextSink | None) -> SwarmOutcome:
        return await run_vote(runner, plan, ctx)

    return await _respond(request, body, run, {}, SwarmOutcome.fanout)


async def pipeline(request: Request) -> Response | SSEResponse:
    _record(request)  # first, so a request refused for its body is counted too
    gateway = _gateway(request)
    body = await _body(request)
    validate(PipelineRequest, body)
    steps = parse_steps(body.get("steps"))
    messages = _messages(body, allow_input=True)
    runner, ctx, params = _runner(gateway, request), _ctx(gateway, request, body), _params(body)
    body["stream"] = False
    return await _respond(
        request, body, lambda sink: run_pipeline(runner, steps, messages, params, ctx), {"X-Swarm-Strategy": "pipeline"}
    )


async def debate(request: Request) -> Response | SSEResponse:
    _record(request)  # first, so a request refused for its body is counted too
    gateway = _gateway(request)
    body = await _body(request)
    validate(DebateRequest, body)
    rounds = whole_number(body.get("rounds", 2))
    if rounds is None:
        raise InvalidRequest("'rounds' must be an integer", param="rounds")
    models = body.get("models") or list(DEFAULT_DEBATERS)
    agents = await _agents(gateway, models)
    if len(agents) < 2 and any(a.model.lower() in SENTINELS for a in parse_agents(models)):
        # The request asked for what is there; what is there is one model: the state's answer, not a 400.
        raise ModelNotFound(
            f"the sentinel in 'models' matched {len(agents)} chat model, a debate needs two",
            param="models",
            code="not_enough_models",
        )
    plan = DebatePlan(
        agents=agents,
        messages=_messages(body, allow_input=True),
        params=_params(body),
        rounds=rounds,
        judge=_judge(body.get("judge"), gateway.config.swarm.chat_default_judge) or agents[0],
        judge_system=body.get("judge_system"),
        max_parallel=_max_parallel(body.get("max_parallel")),
    )
    runner, ctx = _runner(gateway, request), _ctx(gateway, request, body)
    return await _respond(
        request, body, lambda sink: run_debate(runner, plan, ctx, sink), {"X-Swarm-Strategy": "debate"}
    )


async def chat(request: Request, body: JSONObject) -> Response | SSEResponse:
    """A chat request whose ``model`` is a swarm meta-model; options come from ``body.swarm``."""
    gateway = _gateway(request)
    settings = gateway.config.swarm
    name = str(body["model"]).strip().lower()
    intent, canonical = META_MODELS[name]
    if intent == "pipeline":
        raise InvalidRequest(
            "the pipeline needs steps: POST /swarm/pipeline with {steps, messages} instead",
            param="model",
            extra={"redirect": "POST /swarm/pipeline"},
        )
    if not settings.chat_enabled:
        raise InvalidRequest("swarm chat models are turned off (SWARM_CHAT_ENABLED=0)", param="model")
    options = body.get("swarm") if isinstance(body.get("swarm"), dict) else {}
    assert isinstance(options, dict)
    # An explicit strategy wins over the one the name implies.
    implied = "fanout" if intent == "fanout" else settings.chat_default_strategy
    strategy = strategy_name(options.get("strategy") or implied)
    plan = VotePlan(
        agents=await _agents(gateway, options.get("models") or settings.chat_default_models, settings.chat_auto_max),
        messages=_messages(body),
        params=_params(body),
        strategy=strategy,
        judge=_judge(options.get("judge"), _default_judge(gateway, strategy)),
        judge_system=options.get("judge_system"),
        max_parallel=_max_parallel(options.get("max_parallel")),
        samples=_samples(options.get("samples")),
    )
    headers = {"X-Swarm-Strategy": strategy, "X-Swarm-Intent": intent}
    alias = {"X-Swarm-Canonical-Name": canonical} if name != canonical.lower() else {}
    headers.update(alias)
    if name in DEPRECATED:
        headers["Deprecation"] = "true"
        headers["X-Swarm-Deprecated"] = f"{body['model']} is deprecated; use {canonical}"
    runner, ctx = _runner(gateway, request), _ctx(gateway, request, body)
    try:
        return await _respond(request, body, lambda sink: run_vote(runner, plan, ctx, sink), headers)
    except LatticeError as exc:
        exc.headers.update(alias)  # a failed alias still learns its canonical name
        raise
