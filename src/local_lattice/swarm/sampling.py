"""Sampling one request several times: the sample jobs (round-robin over the agents, at a sampling
temperature unless the request set one) and adaptive sampling for a vote, which stops as soon as no
remaining sample could change the majority. Decisions are pure functions; the runner makes the calls."""

from __future__ import annotations

from collections.abc import Sequence

from local_lattice.swarm.answers import answer_groups
from local_lattice.swarm.candidates import Candidate
from local_lattice.swarm.runner import Job, SwarmRunner
from local_lattice.swarm.specs import AgentSpec, CallContext
from local_lattice.types import JSONObject

DEFAULT_SAMPLES = 4
SAMPLING_TEMPERATURE = 0.7  # when the request sets none: samples at temperature 0 would all agree


def sample_jobs(agents: Sequence[AgentSpec], messages: Sequence[JSONObject], params: JSONObject, k: int) -> list[Job]:
    """``k`` calls, round-robin over ``agents`` (one agent: the same model k times)."""
    params = {"temperature": SAMPLING_TEMPERATURE, **params}
    return [Job(f"sample-{i}", agents[i % len(agents)], messages, params) for i in range(k)]


def still_needed(candidates: Sequence[Candidate], remaining: int) -> int:
    """How many more samples could, at the least, settle the vote (0: it is settled). The leader is
    safe once it leads the runner-up by more than the samples still to come."""
    sizes = sorted((len(m) for m in answer_groups(candidates).values()), reverse=True)
    leader = sizes[0] if sizes else 0
    second = sizes[1] if len(sizes) > 1 else 0
    if leader > second + remaining:
        return 0
    # The fewest d with leader + d > second + (remaining - d).
    return min(remaining, (second + remaining - leader) // 2 + 1)


async def sample_until_decided(
    runner: SwarmRunner, jobs: Sequence[Job], ctx: CallContext, max_parallel: int | None
) -> list[Candidate]:
    """Run ``jobs`` in waves, each no larger than what could settle the vote, until it is settled."""
    parallel = max_parallel or runner.settings.max_parallel
    taken: list[Candidate] = []
    while len(taken) < len(jobs):
        wave = min(parallel, still_needed(taken, len(jobs) - len(taken)))
        if wave == 0:
            break
        taken.extend(await runner.gather(jobs[len(taken) : len(taken) + wave], ctx, parallel))
    return taken
