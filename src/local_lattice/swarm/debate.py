"""Debate: in round 1 every debater answers; from round 2 each sees the others' latest answers
(anonymized as "Debater 1, 2 …") and refines its own; a judge then writes one answer from the final
positions. Works over any backend (it is only chat calls); a failed judge falls back to the longest."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from local_lattice.errors import InvalidRequest, UpstreamError
from local_lattice.protocol.swarm import MAX_DEBATE_ROUNDS
from local_lattice.swarm.candidates import Candidate, all_failed
from local_lattice.swarm.judge import longest, question_of
from local_lattice.swarm.outcome import SwarmOutcome
from local_lattice.swarm.runner import Job, SwarmRunner, TextSink
from local_lattice.swarm.specs import AgentSpec, CallContext
from local_lattice.types import JSONObject

DEBATE_JUDGE_SYSTEM = (
    "You moderate a debate. Read the question and the debaters' final answers, weigh their arguments, "
    "and write the single best final answer. Reply with the answer only."
)
MAX_ROUNDS = MAX_DEBATE_ROUNDS


@dataclass(slots=True)
class DebatePlan:
    agents: list[AgentSpec]
    messages: list[JSONObject]
    params: JSONObject = field(default_factory=dict)
    rounds: int = 2
    judge: AgentSpec | None = None
    judge_system: str | None = None
    max_parallel: int | None = None

    def __post_init__(self) -> None:
        if len(self.agents) < 2:
            raise InvalidRequest("a debate needs at least 2 debaters in 'models'", param="models")
        if not 1 <= self.rounds <= MAX_ROUNDS:
            raise InvalidRequest(f"'rounds' must be between 1 and {MAX_ROUNDS}", param="rounds")


def _others(latest: Sequence[Candidate], me: int) -> str:
    return "\n\n".join(f"Debater {k + 1}:\n{c.text.strip()}" for k, c in enumerate(latest) if k != me and c.ok)


def _round_jobs(plan: DebatePlan, latest: Sequence[Candidate] | None, round_no: int) -> list[Job]:
    jobs = []
    for i, agent in enumerate(plan.agents):
        messages = list(plan.messages)
        if latest is not None:
            own = latest[i].text.strip() if latest[i].ok else "(you gave no answer last round)"
            messages += [
                {"role": "assistant", "content": own},
                {
                    "role": "user",
                    "content": "Other debaters answered:\n\n"
                    f"{_others(latest, i)}\n\nConsider their arguments, then give your refined answer.",
                },
            ]
        jobs.append(Job(f"r{round_no}-agent-{i}", agent, messages, plan.params))
    return jobs


async def run_debate(
    runner: SwarmRunner, plan: DebatePlan, ctx: CallContext, sink: TextSink | None = None
) -> SwarmOutcome:
    transcript: list[JSONObject] = []
    latest: list[Candidate] | None = None
    spent: list[Candidate] = []
    rounds_run = 0
    for round_no in range(1, plan.rounds + 1):
        results = await runner.gather(_round_jobs(plan, latest, round_no), ctx, plan.max_parallel)
        spent.extend(results)
        transcript.extend({"round": round_no, **c.row()} for c in results)
        if not any(c.ok for c in results):
            if latest is None:
                raise all_failed(results, f"all {len(results)} debaters failed in round 1")
            break  # keep the last round that produced answers
        latest, rounds_run = results, round_no
    assert latest is not None
    final = await _judge(runner, plan, latest, ctx, sink)
    judge_model = final.model if final else None
    extra: JSONObject = {"rounds": rounds_run, "judge": judge_model, "transcript": transcript}
    earlier = [c for c in spent if all(c is not mine for mine in latest)]
    calls = [*earlier, *([final] if final else [])]
    # The original names the judge in ``model`` and the rounds in a header.
    named, rounds_header = f"swarm/debate/{judge_model or '?'}", {"X-Swarm-Rounds": str(rounds_run)}
    if final is not None and final.ok:
        why = f"judge synthesized {sum(c.ok for c in latest)} final positions after {rounds_run} rounds"
        return SwarmOutcome(
            "debate", final, final.text, latest, why, calls, extra, model_name=named, extra_headers=rounds_header
        )
    if final is not None and sink is not None and sink.started:
        raise UpstreamError(f"the debate judge failed mid-answer: {final.error}", code="swarm_judge_failed")
    index = longest(latest)
    why = "no judge configured" if final is None else f"judge unavailable ({final.error_kind}: {final.error})"
    return SwarmOutcome(
        "debate",
        latest[index],
        latest[index].text,
        latest,
        f"{why}; longest final answer",
        calls,
        extra,
        model_name=named,
        extra_headers=rounds_header,
    )


async def _judge(
    runner: SwarmRunner, plan: DebatePlan, latest: Sequence[Candidate], ctx: CallContext, sink: TextSink | None
) -> Candidate | None:
    if plan.judge is None:
        return None
    positions = "\n\n".join(f"Debater {k + 1}:\n{c.text.strip()}" for k, c in enumerate(latest) if c.ok)
    messages = [
        {"role": "system", "content": plan.judge_system or DEBATE_JUDGE_SYSTEM},
        {"role": "user", "content": f"Question:\n{question_of(plan.messages)}\n\nFinal answers:\n\n{positions}"},
    ]
    params = {**plan.params, "temperature": 0.3}

    def relay(cand: Candidate, piece: str) -> None:
        if sink is not None:
            if not sink.started:
                sink.start(cand.model)
            sink.push(piece)

    return await runner.call(Job("judge", plan.judge, messages, params), ctx, relay if sink else None)
