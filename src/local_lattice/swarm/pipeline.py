"""Pipelines: steps run one after another; ``{{previous}}``, ``{{input}}`` and ``{{<step name>}}`` in a
step's ``system``/``user`` are replaced literally by earlier text. Substitution is one pass, so
braces inside substituted text are never expanded again; unknown placeholders stay as written.
A step without a name is ``step_0``, ``step_1`` … by its position, as in the original."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from local_lattice.errors import InvalidRequest
from local_lattice.swarm.candidates import all_failed
from local_lattice.swarm.judge import question_of
from local_lattice.swarm.outcome import SwarmOutcome, header_list
from local_lattice.swarm.runner import Job, SwarmRunner
from local_lattice.swarm.specs import AgentSpec, CallContext, parse_agents
from local_lattice.types import JSONObject

_PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z0-9_.\-]+)\s*\}\}")


@dataclass(frozen=True, slots=True)
class Step:
    name: str
    agent: AgentSpec
    system: str | None = None
    user: str | None = None


def substitute(template: str, values: Mapping[str, str]) -> str:
    return _PLACEHOLDER.sub(lambda m: values.get(m.group(1), m.group(0)), template)


def parse_steps(raw: Any) -> list[Step]:
    if not isinstance(raw, list) or not raw:
        raise InvalidRequest("'steps' is required: a non-empty list of {name, model, system?, user?}", param="steps")
    steps: list[Step] = []
    for i, item in enumerate(raw):
        where = f"steps[{i}]"
        if not isinstance(item, dict):
            raise InvalidRequest(f"{where}: expected an object", param=where)
        fields = {k: v for k, v in item.items() if k not in ("name", "system", "user")}
        (agent,) = parse_agents(fields, where)
        name = item.get("name")
        for key in ("system", "user"):
            if item.get(key) is not None and not isinstance(item[key], str):
                raise InvalidRequest(f"{where}.{key}: expected a string", param=where)
        steps.append(
            Step(
                name=str(name) if isinstance(name, str) and name.strip() else f"step_{i}",
                agent=agent,
                system=item.get("system"),
                user=item.get("user"),
            )
        )
    return steps


async def run_pipeline(
    runner: SwarmRunner, steps: Sequence[Step], messages: list[JSONObject], params: JSONObject, ctx: CallContext
) -> SwarmOutcome:
    """Each step sees the request's messages (or its own ``user`` text) under its ``system`` text."""
    first = question_of(messages)
    values: dict[str, str] = {"input": first, "previous": first}
    history: list[JSONObject] = []
    calls = []
    for i, step in enumerate(steps):
        own = [m for m in messages if m.get("role") == "system"]
        rest = [m for m in messages if m.get("role") != "system"]
        if step.user is not None:
            rest = [{"role": "user", "content": substitute(step.user, values)}]
        if step.system is not None:
            own = [{"role": "system", "content": substitute(step.system, values)}]
        turn = [*own, *rest]
        call = await runner.call(Job(f"step-{i}:{step.name}", step.agent, turn, params), ctx)
        calls.append(call)
        history.append(
            {"name": step.name, "model": call.model, "text": call.text, "latency_ms": round(call.latency_ms, 3)}
        )
        if not call.ok:
            history[-1] |= {"ok": False, "error": call.error, "error_kind": call.error_kind}
            raise all_failed([call], f"pipeline step {step.name!r} failed", details={"history": history, "step": i})
        values[step.name] = call.text
        values["previous"] = call.text
    last = calls[-1]
    return SwarmOutcome(
        "pipeline",
        last,
        last.text,
        [],
        f"last of {len(steps)} steps",
        calls,
        {"history": history},
        model_name=f"swarm/pipeline/{last.model}",
        extra_headers={"X-Swarm-Steps": header_list(step.name for step in steps)},
    )
