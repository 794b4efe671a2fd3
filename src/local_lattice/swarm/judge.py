"""The judge: shows the candidates anonymized (labels A, B, C …) in a shuffled order, asks for a
structured JSON verdict, and parses whatever comes back. A judge that is unavailable, rambles, or
names a label that does not exist never fails the request: the longest answer wins, with the reason.

Judges favour a position, so the judge runs ``passes`` times (``swarm.judge_passes``, default 2):
the first over a shuffled order, each next one over that order rotated once more (two candidates
swap places; no candidate keeps its position from one pass to the next). A verdict stands only
when every pass names the same candidate; otherwise the majority of the passes decides, then the
majority of the answers, then the longest answer — and it says so.
"""

from __future__ import annotations

import asyncio
import re
import string
from collections.abc import Sequence
from dataclasses import dataclass, field

import orjson

from local_lattice.swarm.answers import answer_groups, sole_leader
from local_lattice.swarm.candidates import Candidate
from local_lattice.swarm.runner import Job, SwarmRunner
from local_lattice.swarm.specs import AgentSpec, CallContext
from local_lattice.types import JSONObject

LABELS = string.ascii_uppercase
JUDGE_SYSTEM = (
    "You are an impartial judge. Compare the candidate answers to the question and pick the one that is "
    "most correct, complete and clear. Judge the content only; the labels and the order mean nothing."
)
_KEYS = ("winner", "label", "best", "choice", "answer", "candidate", "pick")
_JSON_OBJECT = re.compile(r"\{[^{}]*\}")
_LONE = re.compile(
    r"^[\s*#>\-\"'`]*(?:(?:candidate|answer|option|winner|best)\**\s*[:\-]?\**\s*)?\(?\**([A-Za-z])\**\)?[.):]?\s*$",
    re.IGNORECASE,
)
_PHRASE = re.compile(
    r"(?:winner|best|choose|chose|choice|pick|select|prefer)\w*\W+(?:\w+\W+){0,3}?(?:candidate|answer|option)\s+\(?([A-Z])\b",
    re.IGNORECASE,
)
_MENTION = re.compile(r"\b(?:candidate|answer|option)\s+\(?([A-Z])\b")


@dataclass(frozen=True, slots=True)
class Ballot:
    """The order the judge saw: ``order[k]`` is the index (into the candidate list) shown as label k."""

    order: tuple[int, ...]

    @property
    def labels(self) -> tuple[str, ...]:
        return tuple(LABELS[k] for k in range(len(self.order)))

    def index_of(self, label: str) -> int | None:
        position = LABELS.find(label.upper()) if len(label) == 1 else -1
        return self.order[position] if 0 <= position < len(self.order) else None

    def rows(self, candidates: Sequence[Candidate]) -> list[JSONObject]:
        return [{"label": LABELS[k], "agent_id": candidates[i].agent_id} for k, i in enumerate(self.order)]


@dataclass(slots=True)
class Verdict:
    """The judge's pick among the candidates, its reasons, and how it was reached."""

    index: int
    rationale: str
    fallback_reason: str | None = None
    ballot: Ballot | None = None
    label: str | None = None
    call: Candidate | None = None
    extra: JSONObject = field(default_factory=dict)
    passes: list[Pass] = field(default_factory=list)
    consistent: bool | None = None

    @property
    def calls(self) -> list[Candidate]:
        """Every judge call this verdict took (one per pass)."""
        return [p.call for p in self.passes] if self.passes else ([self.call] if self.call else [])


@dataclass(frozen=True, slots=True)
class Pass:
    """One judging pass: the order shown, the call, and the candidate it named (None: no valid label)."""

    ballot: Ballot
    call: Candidate
    label: str | None
    index: int | None
    rationale: str


def make_ballot(indices: Sequence[int], runner: SwarmRunner) -> Ballot:
    order = list(indices)
    runner.rng.shuffle(order)
    return Ballot(tuple(order[: len(LABELS)]))


def longest(candidates: Sequence[Candidate], among: Sequence[int] | None = None) -> int:
    pool = [i for i in (among if among is not None else range(len(candidates))) if candidates[i].ok]
    return max(pool, key=lambda i: len(candidates[i].text.strip()))


def question_of(messages: Sequence[JSONObject]) -> str:
    """The last user message as plain text."""
    for message in reversed(messages):
        if message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, list):
                return " ".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
            return str(content or "")
    return ""


def shown(ballot: Ballot, candidates: Sequence[Candidate]) -> str:
    return "\n\n".join(f"### Candidate {LABELS[k]}\n{candidates[i].text.strip()}" for k, i in enumerate(ballot.order))


def judge_messages(
    question: str, ballot: Ballot, candidates: Sequence[Candidate], system: str | None
) -> list[JSONObject]:
    labels = ", ".join(ballot.labels)
    user = (
        f"Question:\n{question}\n\nCandidate answers (anonymous, in random order):\n\n{shown(ballot, candidates)}\n\n"
        f"Which candidate is best? Answer with JSON only, exactly like "
        f'{{"winner": "<one of {labels}>", "reason": "<one sentence>"}}'
    )
    return [{"role": "system", "content": system or JUDGE_SYSTEM}, {"role": "user", "content": user}]


def _from_json(text: str, labels: Sequence[str]) -> tuple[str | None, str]:
    for match in _JSON_OBJECT.finditer(text):
        try:
            data = orjson.loads(match.group(0))
        except orjson.JSONDecodeError:
            continue
        if not isinstance(data, dict):
            continue
        reason = next((str(data[k]) for k in ("reason", "rationale", "why") if k in data), "")
        for key in _KEYS:
            value = data.get(key)
            if isinstance(value, str):
                label = re.sub(r"(?i)^\s*(candidate|answer|option)\s*", "", value).strip(" .()*\"'").upper()
                if label in labels:
                    return label, reason
    return None, ""


def parse_verdict(text: str, labels: Sequence[str]) -> tuple[str | None, str]:
    """``(label, rationale)`` from a judge's answer, or ``(None, "")`` when no valid label is named."""
    label, reason = _from_json(text, labels)
    if label is not None:
        return label, reason or "chosen by the judge"
    lines = [line for line in text.splitlines() if line.strip()]
    for n, line in enumerate(lines):
        lone = _LONE.match(line)
        # A bare lowercase letter is too likely to be a word ("a"); require a capital there.
        if lone and lone.group(1).upper() in labels and (lone.group(1).isupper() or ":" in line):
            rest = " ".join(lines[n + 1 :]).strip()
            return lone.group(1).upper(), rest[:300] or "chosen by the judge"
    phrase = _PHRASE.search(text)
    if phrase and phrase.group(1).upper() in labels:
        return phrase.group(1).upper(), text.strip()[:300]
    mentioned = {m.group(1) for m in _MENTION.finditer(text)} & set(labels)
    if len(mentioned) == 1:
        return mentioned.pop(), text.strip()[:300]
    return None, ""


def pass_orders(first: Ballot, passes: int) -> list[Ballot]:
    """The orders of the passes: pass k shows the first order rotated by k, so every candidate
    moves each pass (two candidates swap) and ``passes`` = candidates shows each in every position."""
    n = len(first.order)
    return [Ballot(first.order[k % n :] + first.order[: k % n]) for k in range(passes)]


async def _one_pass(
    runner: SwarmRunner,
    ballot: Ballot,
    candidates: Sequence[Candidate],
    question: str,
    spec: AgentSpec,
    ctx: CallContext,
    system: str | None,
    agent_id: str,
) -> Pass:
    messages = judge_messages(question, ballot, candidates, system)
    params: JSONObject = {"temperature": 0, "max_tokens": 200, "response_format": {"type": "json_object"}}
    call = await runner.call(Job(agent_id, spec, messages, params), ctx)
    if not call.ok and call.error_kind in ("upstream_4xx", "config_error"):
        # The judge's server (or engine) may not do JSON mode; ask again in plain text.
        params.pop("response_format")
        call = await runner.call(Job(agent_id, spec, messages, params), ctx)
    if not call.ok:
        return Pass(ballot, call, None, None, "")
    label, rationale = parse_verdict(call.text, ballot.labels)
    index = ballot.index_of(label) if label is not None else None
    return Pass(ballot, call, label if index is not None else None, index, rationale)


def _fallback(passes: Sequence[Pass], candidates: Sequence[Candidate], field_: Sequence[int]) -> tuple[int, str]:
    """When the passes disagree: their majority, then the answers' majority, then the longest."""
    named = [p.index for p in passes if p.index is not None]
    if named:
        counts = {i: named.count(i) for i in dict.fromkeys(named)}
        top = max(counts.values())
        leaders = [i for i, n in counts.items() if n == top]
        if len(leaders) == 1 and top * 2 > len(passes):
            return leaders[0], f"majority of the judge's passes ({top} of {len(passes)})"
    agreed = sole_leader(answer_groups(candidates, field_))
    if agreed is not None and len(agreed) > 1:
        return agreed[0], f"majority of the answers ({len(agreed)} agree)"
    return longest(candidates, field_), "longest answer"


async def judge(
    runner: SwarmRunner,
    candidates: Sequence[Candidate],
    question: str,
    spec: AgentSpec | None,
    ctx: CallContext,
    *,
    system: str | None = None,
    among: Sequence[int] | None = None,
) -> Verdict:
    """Pick one of the good candidates (``among`` narrows the field, e.g. to tied groups)."""
    field_ = [i for i in (among if among is not None else range(len(candidates))) if candidates[i].ok]
    if len(field_) == 1:
        return Verdict(field_[0], "the only candidate in the running")
    if spec is None:
        return Verdict(longest(candidates, field_), "longest answer", fallback_reason="no judge configured")
    orders = pass_orders(make_ballot(field_, runner), runner.settings.judge_passes)
    # Pass k's calls are ``judge``, ``judge-2`` …: each keeps its own usage row.
    ids = ["judge", *(f"judge-{k}" for k in range(2, len(orders) + 1))]
    passes = await asyncio.gather(
        *(_one_pass(runner, b, candidates, question, spec, ctx, system, i) for b, i in zip(orders, ids, strict=True))
    )
    first = passes[0]
    base = Verdict(0, "", ballot=first.ballot, label=first.label, call=first.call, passes=list(passes))
    if all(not p.call.ok for p in passes):
        reason = f"judge unavailable ({first.call.error_kind}: {first.call.error}); longest answer chosen"
        base.index, base.rationale, base.fallback_reason = longest(candidates, field_), reason, reason
        return base
    named = {p.index for p in passes}
    base.consistent = len(named) == 1 and None not in named
    if base.consistent and first.index is not None:
        base.index, base.rationale = first.index, first.rationale
        return base
    index, how = _fallback(passes, candidates, field_)
    if all(p.index is None for p in passes):
        why = "judge answer named no valid candidate"
    else:
        why = f"judge passes disagreed ({', '.join(p.label or '-' for p in passes)} over swapped orders)"
    base.index, base.rationale = index, f"{why}; {how} chosen"
    base.fallback_reason = base.rationale
    return base


def verdict_meta(verdict: Verdict, candidates: Sequence[Candidate]) -> JSONObject:
    """What the response records about the judging: model, the anonymized order, fallback, raw text."""
    meta: JSONObject = {
        "model": verdict.call.model if verdict.call else None,
        "label": verdict.label,
        "order": verdict.ballot.rows(candidates) if verdict.ballot else [],
        "fallback_reason": verdict.fallback_reason,
    }
    if verdict.call is not None:
        meta["raw"] = verdict.call.text[:2000]
    if verdict.passes:
        meta["passes"] = len(verdict.passes)
        meta["consistent"] = verdict.consistent
        meta["verdicts"] = [
            {
                "label": p.label,
                "agent_id": candidates[p.index].agent_id if p.index is not None else None,
                "order": [candidates[i].agent_id for i in p.ballot.order],
                "ok": p.call.ok,
                "raw": p.call.text[:500],
            }
            for p in verdict.passes
        ]
    return meta
