"""Vote strategies over one set of agents: ``best-of-n`` (judge), ``first-success``, ``longest``,
``fanout`` (no judge), ``majority`` (self-consistency; ties go to the judge; with ``samples`` it
draws until the vote is settled), ``synthesize`` (an aggregator merges the candidates) and
``self-moa`` (one model sampled ``samples`` times, its drafts merged). Each returns a
``SwarmOutcome`` or raises ``SwarmFailed``."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from local_lattice.errors import InvalidRequest, UpstreamError
from local_lattice.protocol.swarm import STRATEGIES, STRATEGY_ALIASES
from local_lattice.swarm.answers import normalize_answer
from local_lattice.swarm.candidates import Candidate, all_failed
from local_lattice.swarm.judge import judge, longest, make_ballot, question_of, shown, verdict_meta
from local_lattice.swarm.outcome import SwarmOutcome
from local_lattice.swarm.runner import Job, SwarmRunner, TextSink
from local_lattice.swarm.sampling import DEFAULT_SAMPLES, sample_jobs, sample_until_decided
from local_lattice.swarm.specs import AgentSpec, CallContext
from local_lattice.types import JSONObject

_ALIASES = STRATEGY_ALIASES
SYNTH_SYSTEM = (
    "You merge several draft answers to the same request into one answer that is better than each: keep "
    "what is correct, fix what is wrong, drop repetition. Reply with the final answer only."
)


@dataclass(slots=True)
class VotePlan:
    agents: list[AgentSpec]
    messages: list[JSONObject]
    params: JSONObject = field(default_factory=dict)
    strategy: str = "best-of-n"
    judge: AgentSpec | None = None
    judge_system: str | None = None
    max_parallel: int | None = None
    samples: int | None = None  # self-moa: samples to draw; majority: the most to draw (adaptive)

    def jobs(self) -> list[Job]:
        return [Job(f"agent-{i}", a, self.messages, self.params) for i, a in enumerate(self.agents)]


def strategy_name(raw: object) -> str:
    name = str(raw).strip().lower() if raw is not None else "best-of-n"
    name = _ALIASES.get(name, name)
    if name not in STRATEGIES:
        raise InvalidRequest(
            f"unknown swarm strategy {raw!r}; expected one of {', '.join(STRATEGIES)}", param="strategy"
        )
    return name


async def run_vote(runner: SwarmRunner, plan: VotePlan, ctx: CallContext, sink: TextSink | None = None) -> SwarmOutcome:
    if plan.strategy == "first-success":
        return await _first_success(runner, plan, ctx, sink)
    candidates = await _candidates(runner, plan, ctx)
    good = [i for i, c in enumerate(candidates) if c.ok]
    if not good:
        raise all_failed(candidates, f"all {len(candidates)} swarm agents failed")
    if plan.strategy in ("fanout", "longest"):
        index = good[0] if plan.strategy == "fanout" else longest(candidates)
        why = "first agent (in request order) that answered" if plan.strategy == "fanout" else "longest answer"
        return SwarmOutcome(plan.strategy, candidates[index], candidates[index].text, candidates, why)
    if plan.strategy == "majority":
        outcome = await _majority(runner, plan, candidates, ctx)
        if plan.samples is not None:
            taken = len(candidates)
            outcome.extra["samples"] = {"taken": taken, "max": plan.samples, "stopped_early": taken < plan.samples}
        return outcome
    if plan.strategy in ("synthesize", "self-moa"):
        outcome = await _synthesize(runner, plan, candidates, ctx, sink)
        if plan.strategy == "self-moa":
            outcome.extra["samples"] = {"taken": len(candidates), "max": len(candidates), "stopped_early": False}
        return outcome
    verdict = await judge(runner, candidates, question_of(plan.messages), plan.judge, ctx, system=plan.judge_system)
    winner = candidates[verdict.index]
    calls = verdict.calls
    return SwarmOutcome(
        "best-of-n",
        winner,
        winner.text,
        candidates,
        verdict.rationale,
        calls,
        {"judge": verdict_meta(verdict, candidates)},
    )


async def _candidates(runner: SwarmRunner, plan: VotePlan, ctx: CallContext) -> list[Candidate]:
    """One call per agent; self-moa draws ``samples`` from its agents; a majority with ``samples``
    draws until the vote is settled."""
    if plan.strategy == "self-moa":
        jobs = sample_jobs(plan.agents, plan.messages, plan.params, plan.samples or DEFAULT_SAMPLES)
        return await runner.gather(jobs, ctx, plan.max_parallel)
    if plan.strategy == "majority" and plan.samples is not None:
        jobs = sample_jobs(plan.agents, plan.messages, plan.params, plan.samples)
        return await sample_until_decided(runner, jobs, ctx, plan.max_parallel)
    return await runner.gather(plan.jobs(), ctx, plan.max_parallel)


async def _first_success(runner: SwarmRunner, plan: VotePlan, ctx: CallContext, sink: TextSink | None) -> SwarmOutcome:
    winner, candidates = await runner.first_success(plan.jobs(), ctx, plan.max_parallel, sink)
    if winner is None:
        if sink is not None and sink.started:
            leader = next((c for c in candidates if c.text and not c.ok), None)
            detail = leader.error if leader is not None else "unknown error"
            raise UpstreamError(f"the streaming swarm winner failed mid-answer: {detail}", code="swarm_winner_failed")
        raise all_failed(candidates, f"all {len(candidates)} swarm agents failed")
    return SwarmOutcome("first-success", winner, winner.text, candidates, "first agent to answer")


async def _majority(runner: SwarmRunner, plan: VotePlan, candidates: list[Candidate], ctx: CallContext) -> SwarmOutcome:
    groups: dict[str, list[int]] = {}
    for i, cand in enumerate(candidates):
        if cand.ok:
            groups.setdefault(normalize_answer(cand.text), []).append(i)
    counts = Counter({key: len(members) for key, members in groups.items()})
    top = max(counts.values())
    leaders = [key for key, n in counts.items() if n == top]
    votes = [
        {"answer": key, "count": n, "agents": [candidates[i].agent_id for i in groups[key]]}
        for key, n in counts.most_common()
    ]
    good = sum(counts.values())
    if len(leaders) == 1:
        index = groups[leaders[0]][0]
        why = f"{top} of {good} answers agree"
        return SwarmOutcome(
            "majority", candidates[index], candidates[index].text, candidates, why, extra={"votes": votes}
        )
    tied = [groups[key][0] for key in leaders]
    verdict = await judge(
        runner, candidates, question_of(plan.messages), plan.judge, ctx, system=plan.judge_system, among=tied
    )
    winner = candidates[verdict.index]
    why = f"tie between {len(tied)} answers ({top} votes each); judge: {verdict.rationale}"
    extra = {"votes": votes, "judge": verdict_meta(verdict, candidates)}
    calls = verdict.calls
    return SwarmOutcome("majority", winner, winner.text, candidates, why, calls, extra)


async def _synthesize(
    runner: SwarmRunner, plan: VotePlan, candidates: list[Candidate], ctx: CallContext, sink: TextSink | None
) -> SwarmOutcome:
    good = [i for i, c in enumerate(candidates) if c.ok]
    # Self-MoA: the sampled model merges its own drafts unless an aggregator is named.
    aggregator = plan.judge or (plan.agents[0] if plan.strategy == "self-moa" else None)
    if aggregator is None or len(good) == 1:
        index = longest(candidates)
        why = "only one candidate answered" if len(good) == 1 else "no aggregator configured; longest answer"
        return SwarmOutcome(plan.strategy, candidates[index], candidates[index].text, candidates, why)
    ballot = make_ballot(good, runner)
    user = (
        f"Request:\n{question_of(plan.messages)}\n\nDraft answers (anonymous, in random order):\n\n"
        f"{shown(ballot, candidates)}\n\nWrite the single best answer to the request."
    )
    messages = [{"role": "system", "content": plan.judge_system or SYNTH_SYSTEM}, {"role": "user", "content": user}]

    def relay(cand: Candidate, piece: str) -> None:
        if sink is not None:
            if not sink.started:
                sink.start(cand.model)
            sink.push(piece)

    call = await runner.call(Job("aggregator", aggregator, messages, plan.params), ctx, relay if sink else None)
    extra: JSONObject = {"aggregator": {"model": call.model, "order": ballot.rows(candidates), "ok": call.ok}}
    if call.ok:
        why = f"aggregator merged {len(good)} answers"
        return SwarmOutcome(plan.strategy, call, call.text, candidates, why, [call], extra)
    if sink is not None and sink.started:
        raise UpstreamError(f"the aggregator failed mid-answer: {call.error}", code="swarm_aggregator_failed")
    index = longest(candidates)
    why = f"aggregator unavailable ({call.error_kind}: {call.error}); longest answer chosen"
    extra["aggregator"]["fallback_reason"] = why
    return SwarmOutcome(plan.strategy, candidates[index], candidates[index].text, candidates, why, [call], extra)
