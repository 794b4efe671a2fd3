"""``lattice eval``: run a JSONL dataset (``id, prompt, expected|null, grader, rubric``) through single
model / vote / debate / majority / synthesize against a gateway over HTTP, grade each answer, and
summarize accuracy, mean and median latency, and deltas against single. Owns no server."""

from __future__ import annotations

import re
import statistics
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import aiohttp
import orjson

METHODS = ("single", "vote", "debate", "majority", "synthesize")
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
    correct = grade(row, answer)
    if correct is None:
        try:
            correct = await judge_grade(client, judge, row, answer)
        except (RuntimeError, aiohttp.ClientError, TimeoutError, KeyError):
            correct = None
    return EvalResult(row.id, method, correct, latency, answer, data.get("swarm", {}).get("winner"))


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


def summarize(results: Sequence[EvalResult], methods: Sequence[str]) -> list[dict[str, Any]]:
    table: list[dict[str, Any]] = []
    for method in methods:
        mine = [r for r in results if r.method == method]
        graded = [r for r in mine if r.correct is not None]
        latencies = [r.latency_ms for r in mine]
        table.append(
            {
                "method": method,
                "rows": len(mine),
                "accuracy": sum(bool(r.correct) for r in graded) / len(graded) if graded else 0.0,
                "mean_ms": statistics.fmean(latencies) if latencies else 0.0,
                "median_ms": statistics.median(latencies) if latencies else 0.0,
                "errors": sum(r.error is not None for r in mine),
            }
        )
    base = next((t for t in table if t["method"] == "single"), None)
    for line in table:
        line["accuracy_delta"] = float(line["accuracy"]) - float(base["accuracy"]) if base else None
        line["median_ms_delta"] = float(line["median_ms"]) - float(base["median_ms"]) if base else None
    return table


def render(table: Sequence[dict[str, Any]]) -> str:
    head = (
        f"{'method':<11} {'rows':>4} {'accuracy':>8} {'Δacc':>7} {'mean ms':>9} {'median ms':>9} "
        f"{'Δmedian':>9} {'errors':>6}"
    )
    lines = [head]
    for t in table:
        d_acc = "" if t["accuracy_delta"] is None else f"{t['accuracy_delta']:+.2f}"
        d_med = "" if t["median_ms_delta"] is None else f"{t['median_ms_delta']:+.0f}"
        lines.append(
            f"{t['method']:<11} {t['rows']:>4} {t['accuracy']:>8.2f} {d_acc:>7} {t['mean_ms']:>9.0f} "
            f"{t['median_ms']:>9.0f} {d_med:>9} {t['errors']:>6}"
        )
    return "\n".join(lines)


def write_rows(path: Path, results: Sequence[EvalResult]) -> None:
    path.write_bytes(b"".join(orjson.dumps(asdict(r)) + b"\n" for r in results))
