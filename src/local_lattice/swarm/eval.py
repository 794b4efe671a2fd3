"""``lattice eval``: run a JSONL dataset (``id, prompt, expected|null, grader, rubric``) through single
model / vote / debate / majority / synthesize against a gateway over HTTP, grade each answer, and
summarize per method accuracy with a 95 % interval, latency and tokens against ``single``, and a
one-line verdict on whether the method reliably beat a single call (a paired interval on the
difference). Owns no server."""

from __future__ import annotations

import math
import re
import statistics
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import aiohttp
import orjson

METHODS = ("single", "vote", "debate", "majority", "synthesize", "self-moa")
Z95 = 1.959964  # two-sided 95 % normal quantile
GRADERS = ("substring", "exact", "regex", "llm_judge")


@dataclass(frozen=True, slots=True)
class EvalRow:
    """One question of an evaluation set: the prompt, what a right answer contains, how to grade it."""

    id: str
    prompt: str
    expected: str | None = None
    grader: str = "substring"
    rubric: str | None = None


@dataclass(slots=True)
class EvalResult:
    """How one method answered one question: correct or not, the time and the answer."""

    id: str
    method: str
    correct: bool | None
    latency_ms: float
    answer: str
    winner: str | None = None
    error: str | None = None
    tokens: int = 0  # every call the answer took (the swarm's summed usage)


def load_dataset(path: Path) -> list[EvalRow]:
    rows = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        data = orjson.loads(line)
        grader = data.get("grader") or ("substring" if data.get("expected") is not None else "llm_judge")
        if grader not in GRADERS or not isinstance(data.get("prompt"), str):
            raise ValueError(f"{path}:{n}: needs a 'prompt' and a grader among {', '.join(GRADERS)}")
        rows.append(EvalRow(str(data.get("id", n)), data["prompt"], data.get("expected"), grader, data.get("rubric")))
    return rows


class GatewayClient:
    """The few calls the evaluator makes, over one aiohttp session."""

    def __init__(self, session: aiohttp.ClientSession, base_url: str, api_key: str | None = None) -> None:
        self.session = session
        self.base = base_url.rstrip("/")
        self.headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}

    async def post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        async with self.session.post(self.base + path, json=body, headers=self.headers) as resp:
            data = await resp.json(content_type=None)
            if resp.status >= 400:
                error = data.get("error") if isinstance(data, dict) else None
                message = error.get("message") if isinstance(error, dict) else str(data)[:300]
                raise RuntimeError(f"{path} answered {resp.status}: {message}")
            return data if isinstance(data, dict) else {}


def grade(row: EvalRow, answer: str) -> bool | None:
    """Local graders; ``None`` means the row needs the judge model (``llm_judge``)."""
    if row.grader == "llm_judge" or row.expected is None:
        return None
    if row.grader == "exact":
        return answer.strip().casefold().rstrip(".") == row.expected.strip().casefold().rstrip(".")
    if row.grader == "regex":
        return re.search(row.expected, answer, re.IGNORECASE | re.DOTALL) is not None
    return row.expected.casefold() in answer.casefold()


async def judge_grade(client: GatewayClient, judge: str, row: EvalRow, answer: str) -> bool:
    rubric = row.rubric or (f"The answer must agree with: {row.expected}" if row.expected else "The answer is correct.")
    prompt = (
        f"Question: {row.prompt}\n\nAnswer: {answer}\n\nRubric: {rubric}\n\n"
        "Does the answer meet the rubric? Reply YES or NO."
    )
    data = await client.post(
        "/v1/chat/completions",
        {"model": judge, "messages": [{"role": "user", "content": prompt}], "max_tokens": 5, "temperature": 0},
    )
    return str(data["choices"][0]["message"]["content"]).strip().upper().startswith("YES")


def request_for(
    method: str, row: EvalRow, models: Sequence[str], judge: str, max_tokens: int
) -> tuple[str, dict[str, Any]]:
    messages = [{"role": "user", "content": row.prompt}]
    common = {"messages": messages, "max_tokens": max_tokens}
    if method == "single":
        return "/v1/chat/completions", {**common, "model": models[0]}
    if method == "debate":
        return "/swarm/debate", {**common, "models": list(models), "judge": judge, "rounds": 2}
    if method == "self-moa":  # the first model sampled as many times as there are models (at least twice)
        body = {**common, "models": [models[0]], "strategy": "self-moa", "samples": max(2, len(models))}
        return "/swarm/vote", body
    strategy = {"vote": "best-of-n", "majority": "majority", "synthesize": "synthesize"}[method]
    return "/swarm/vote", {**common, "models": list(models), "judge": judge, "strategy": strategy}


async def run_one(
    client: GatewayClient, method: str, row: EvalRow, models: Sequence[str], judge: str, max_tokens: int
) -> EvalResult:
    path, body = request_for(method, row, models, judge, max_tokens)
    started = time.perf_counter()
    try:
        data = await client.post(path, body)
    except (RuntimeError, aiohttp.ClientError, TimeoutError) as exc:
        return EvalResult(row.id, method, False, (time.perf_counter() - started) * 1000, "", error=str(exc))
    latency = (time.perf_counter() - started) * 1000
    answer = str(data["choices"][0]["message"]["content"] or "")
    usage = data.get("usage")
    tokens = int(usage.get("total_tokens") or 0) if isinstance(usage, dict) else 0
    correct = grade(row, answer)
    if correct is None:
        try:
            correct = await judge_grade(client, judge, row, answer)
        except (RuntimeError, aiohttp.ClientError, TimeoutError, KeyError):
            correct = None
    return EvalResult(row.id, method, correct, latency, answer, data.get("swarm", {}).get("winner"), tokens=tokens)


async def run_eval(
    base_url: str,
    rows: Sequence[EvalRow],
    methods: Sequence[str],
    models: Sequence[str],
    judge: str,
    *,
    api_key: str | None = None,
    max_tokens: int = 64,
    call_seconds: float = 600,
) -> list[EvalResult]:
    results = []
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=call_seconds)) as session:
        client = GatewayClient(session, base_url, api_key)
        for method in methods:
            for row in rows:
                results.append(await run_one(client, method, row, models, judge, max_tokens))
    return results


def wilson(correct: int, n: int) -> tuple[float, float]:
    """The 95 % Wilson score interval of a share ``correct / n`` (sound for small n and shares near 0 or 1)."""
    if n == 0:
        return 0.0, 1.0
    p = correct / n
    centre = (p + Z95**2 / (2 * n)) / (1 + Z95**2 / n)
    half = Z95 * math.sqrt(p * (1 - p) / n + Z95**2 / (4 * n * n)) / (1 + Z95**2 / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def paired_delta(mine: Sequence[EvalResult], base: Sequence[EvalResult]) -> tuple[float, float, int]:
    """Mean difference in correctness against ``base`` over the rows both graded, its 95 % half-width
    (normal approximation on the per-row differences), and how many rows were paired."""
    single = {r.id: r.correct for r in base if r.correct is not None}
    diffs = [int(bool(r.correct)) - int(bool(single[r.id])) for r in mine if r.correct is not None and r.id in single]
    if not diffs:
        return 0.0, math.inf, 0
    half = Z95 * statistics.stdev(diffs) / math.sqrt(len(diffs)) if len(diffs) > 1 else math.inf
    return statistics.fmean(diffs), half, len(diffs)


def _ratio(value: float, base: float) -> float | None:
    return value / base if base > 0 else None


def summarize(results: Sequence[EvalResult], methods: Sequence[str]) -> list[dict[str, Any]]:
    table: list[dict[str, Any]] = []
    by_method = {m: [r for r in results if r.method == m] for m in methods}
    for method in methods:
        mine = by_method[method]
        graded = [r for r in mine if r.correct is not None]
        right = sum(bool(r.correct) for r in graded)
        latencies = [r.latency_ms for r in mine]
        low, high = wilson(right, len(graded))
        table.append(
            {
                "method": method,
                "rows": len(mine),
                "accuracy": right / len(graded) if graded else 0.0,
                "accuracy_low": low,
                "accuracy_high": high,
                "mean_ms": statistics.fmean(latencies) if latencies else 0.0,
                "median_ms": statistics.median(latencies) if latencies else 0.0,
                "tokens": statistics.fmean(r.tokens for r in mine) if mine else 0.0,
                "errors": sum(r.error is not None for r in mine),
            }
        )
    base = next((t for t in table if t["method"] == "single"), None)
    for line in table:
        line["accuracy_delta"] = float(line["accuracy"]) - float(base["accuracy"]) if base else None
        line["median_ms_delta"] = float(line["median_ms"]) - float(base["median_ms"]) if base else None
        line["tokens_ratio"] = _ratio(line["tokens"], base["tokens"]) if base else None
        line["latency_ratio"] = _ratio(line["median_ms"], base["median_ms"]) if base else None
        if base is None or line["method"] == "single":
            line["verdict"] = None
            continue
        delta, half, paired = paired_delta(by_method[line["method"]], by_method["single"])
        line["delta_points"], line["delta_half_points"], line["paired_rows"] = delta * 100, half * 100, paired
        line["verdict"] = verdict(line)
    return table


def verdict(line: dict[str, Any]) -> str:
    """``vote: +2.0 ± 4.1 points, 3.1x tokens, 2.0x latency: no reliable gain``."""
    delta, half = float(line["delta_points"]), float(line["delta_half_points"])
    if not line["paired_rows"]:
        return f"{line['method']}: no rows graded for both it and single"
    if delta - half > 0:
        call = "a reliable gain"
    elif delta + half < 0:
        call = "a reliable loss"
    else:
        call = "no reliable gain"
    spread = "± ∞" if math.isinf(half) else f"± {half:.1f}"
    costs = [f"{r:.1f}x {what}" for r, what in ((line["tokens_ratio"], "tokens"), (line["latency_ratio"], "latency"))
             if r is not None]  # fmt: skip
    return f"{line['method']}: {delta:+.1f} {spread} points, {', '.join(costs) or 'cost unknown'}: {call}"


def render(table: Sequence[dict[str, Any]]) -> str:
    """The table, a blank line, then one verdict line per method against single."""
    head = (
        f"{'method':<11} {'rows':>4} {'accuracy':>8} {'95% CI':>11} {'Δacc':>7} {'mean ms':>9} {'median ms':>9} "
        f"{'Δmedian':>9} {'tokens':>7} {'errors':>6}"
    )
    lines = [head]
    for t in table:
        d_acc = "" if t["accuracy_delta"] is None else f"{t['accuracy_delta']:+.2f}"
        d_med = "" if t["median_ms_delta"] is None else f"{t['median_ms_delta']:+.0f}"
        ci = f"{t['accuracy_low']:.2f}-{t['accuracy_high']:.2f}"
        lines.append(
            f"{t['method']:<11} {t['rows']:>4} {t['accuracy']:>8.2f} {ci:>11} {d_acc:>7} {t['mean_ms']:>9.0f} "
            f"{t['median_ms']:>9.0f} {d_med:>9} {t['tokens']:>7.0f} {t['errors']:>6}"
        )
    verdicts = [t["verdict"] for t in table if t.get("verdict")]
    return "\n".join([*lines, "", *verdicts] if verdicts else lines)


def write_rows(path: Path, results: Sequence[EvalResult]) -> None:
    path.write_bytes(b"".join(orjson.dumps(asdict(r)) + b"\n" for r in results))
