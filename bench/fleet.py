"""Fleet routing on real llama.cpp servers: round robin vs least-loaded vs affinity, in one run.

    python bench/fleet.py [--servers 2] [--conversations 16] [--turns 6] [--threads 1]
        [--max-tokens 16] [--tool-chars 600] [--think 2.0] [--json FILE] [--no-docs]

Servers: llama-cpp-python's OpenAI-compatible server (``python -m llama_cpp.server``) with the real
SmolLM2-135M-Instruct GGUF, prompt cache on (``--cache true``: a RAM cache of states keyed by their
prompt, besides the reuse of the live context's prefix). That server keeps one sequence and runs one
request at a time: it has no ``--parallel`` slots, so requests wait in its queue. Every mode has
servers of its own, each warmed with the shared system prompt (every mode starts with it cached on
every server), and its own gateway (``lattice serve`` with ``[routing] balance = <mode>``). The three
modes run at the same time: on a shared machine whose load drifts, the drift then hits all alike
(a mode that finishes first leaves its CPU to the others).

Workload, like coding agents: ``--conversations`` at once, each ``--turns`` turns in sequence — the
shared system prompt (~1,700 tokens), its own task, then per turn the model's reply and a tool result
of ``--tool-chars`` characters after the tool ran for up to ``--think`` seconds (drawn from a fixed
seed, the same in every mode). Requests are streamed through the gateway with nothing but the
conversation itself (no session header: affinity keys on the conversation's start). TTFT is measured
at the client; prompt tokens re-processed are the servers' own figures from their logs (llama.cpp's
``prompt eval time = … / N tokens`` per request, ``N prefix-match hit`` for what was reused).

Figures are only comparable within one run: the machine is shared.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import re
import sys
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

# Run as a script from any directory: the checkout (bench/, tests/support) and its src/ come first.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx
import orjson
from tests.support.models import SMOLLM2_ID
from tests.support.procs import RunningProcess
from tests.support.servers import gateway_process, llama_server

from bench.report import machine_lines, table, write_section
from bench.workload import use_this_checkout

MODES = ("round_robin", "least_loaded", "affinity")
DOCS = Path(__file__).resolve().parents[1] / "docs" / "benchmarks.md"
PROMPT_EVAL = re.compile(r"prompt eval time =\s*([\d.]+) ms /\s*(\d+) tokens")
PREFIX_HIT = re.compile(r"(\d+) prefix-match hit")


def system_prompt() -> str:
    """About 1,700 tokens of an agent's standing instructions, the same for every conversation."""
    rules = [
        f"Rule {i}: when the task touches module {i % 7} read its tests first, keep functions under "
        f"{40 + i} lines, name things for what they own, and report what you changed in step {i % 5}."
        for i in range(1, 41)
    ]
    return "You are a careful coding agent working in a large repository.\n" + "\n".join(rules)


def tool_result(conversation: int, turn: int, chars: int) -> str:
    lines = []
    i = 0
    while sum(len(line) + 1 for line in lines) < chars:
        lines.append(f"src/pkg{conversation}/mod{turn}_{i}.py:{10 + i}: def handler_{i}(request) -> Answer  # ok")
        i += 1
    return f"Tool output (step {turn}):\n" + "\n".join(lines)[:chars]


@dataclass
class ModeResult:
    mode: str
    ttft: list[float] = field(default_factory=list)
    seconds: float = 0.0
    errors: int = 0
    failures: list[str] = field(default_factory=list)
    routed: dict[str, int] = field(default_factory=dict)
    evaluated: int = 0  # prompt tokens the servers processed
    reused: int = 0  # prompt tokens the servers took from their caches
    eval_seconds: float = 0.0  # the servers' own time in prompt processing

    def p(self, q: float) -> float:
        ordered = sorted(self.ttft)
        return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))] if ordered else float("nan")


def server_figures(logs: list[str]) -> tuple[int, int, float]:
    evaluated = reused = 0
    seconds = 0.0
    for text in logs:
        for ms, tokens in PROMPT_EVAL.findall(text):
            evaluated += int(tokens)
            seconds += float(ms) / 1000
        reused += sum(int(n) for n in PREFIX_HIT.findall(text))
    return evaluated, reused, seconds


@contextlib.contextmanager
def servers(count: int, threads: int, cache_mb: int) -> Iterator[list[RunningProcess]]:
    # The server keeps logits for every position by default (logits_all: n_ctx x vocabulary floats,
    # 800 MB with SmolLM2's 49k vocabulary) and each cached state copies them: servers grew past 8 GB.
    # Nothing here needs logits, so they are off; a smaller batch keeps the per-state copy small too.
    args = ("--cache", "true", "--cache_type", "ram", "--cache_size", str(cache_mb << 20), "--n_batch", "128",
            "--logits_all", "False", "--interrupt_requests", "False", "--verbose", "True")  # fmt: skip
    with contextlib.ExitStack() as stack:
        yield [
            stack.enter_context(llama_server(alias=SMOLLM2_ID, n_ctx=4096, n_threads=threads, extra_args=args))
            for _ in range(count)
        ]


async def warm(members: list[RunningProcess], system: str) -> None:
    body = {"model": SMOLLM2_ID, "max_tokens": 1, "messages": [{"role": "system", "content": system},
                                                               {"role": "user", "content": "Ready?"}]}  # fmt: skip
    async with httpx.AsyncClient(timeout=900) as http:
        answers = await asyncio.gather(*(http.post(m.url + "/chat/completions", json=body) for m in members))
    for answer in answers:
        answer.raise_for_status()


async def one_turn(
    http: httpx.AsyncClient, url: str, messages: list[dict[str, str]], max_tokens: int
) -> tuple[float, str, str]:
    """(time to first content, the reply, X-Model-Routed-To)."""
    body = {"model": SMOLLM2_ID, "messages": messages, "max_tokens": max_tokens, "stream": True,
            "temperature": 0.0}  # fmt: skip
    started = time.monotonic()
    first = None
    parts: list[str] = []
    async with http.stream("POST", url + "/v1/chat/completions", json=body) as resp:
        resp.raise_for_status()
        routed = resp.headers.get("x-model-routed-to", "?")
        async for line in resp.aiter_lines():
            if not line.startswith("data:") or line.strip() == "data: [DONE]":
                continue
            chunk = orjson.loads(line[5:])
            choices = chunk.get("choices") or [{}]
            text = (choices[0].get("delta") or {}).get("content") or ""
            if text and first is None:
                first = time.monotonic() - started
            parts.append(text)
    return (first if first is not None else time.monotonic() - started), "".join(parts), routed


async def conversation(
    http: httpx.AsyncClient, url: str, system: str, index: int, args: argparse.Namespace, tag: str, out: ModeResult
) -> None:
    think = random.Random(index)  # the same tool times for this conversation in every mode
    messages = [
        {"role": "system", "content": system},
        {"role": "user", "content": f"[{tag}] Task {index}: fix the failing test in package pkg{index} and explain."},
    ]
    for turn in range(args.turns):
        try:
            ttft, reply, routed = await one_turn(http, url, messages, args.max_tokens)
        except httpx.HTTPError as exc:
            out.errors += 1
            out.failures.append(f"conversation {index} turn {turn}: {type(exc).__name__}: {exc}")
            return
        out.ttft.append(ttft)
        out.routed[routed] = out.routed.get(routed, 0) + 1
        await asyncio.sleep(think.uniform(0, args.think))  # the tool runs
        messages += [
            {"role": "assistant", "content": reply or "(no output)"},
            {"role": "user", "content": tool_result(index, turn, args.tool_chars)},
        ]


def gateway_toml(members: list[RunningProcess], mode: str) -> str:
    # A fixed fleet's model lists need no refetching (the health checks still probe every 10 s): a
    # busy llama-cpp-python server lists its models only between requests, and a refetch would hold
    # up routing while it waits.
    parts = [
        f'[[backends]]\nname = "llama-{i}"\ntype = "openai"\nurl = "{m.url}"\ntimeout = 900\nmodel_list_ttl = 3600\n'
        for i, m in enumerate(members)
    ]
    return "\n".join(parts) + f'\n[routing]\nbalance = "{mode}"\n'


def rss_mb(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/status", encoding="utf-8") as status:
            line = next((ln for ln in status if ln.startswith("VmRSS:")), "VmRSS: 0 kB")
    except OSError:
        return 0.0
    return int(line.split()[1]) / 1024


async def watch(members: list[RunningProcess], limit_mb: float) -> None:
    """Stop the run before a server's memory hurts the shared machine."""
    while True:
        for member in members:
            used = rss_mb(member.proc.pid)
            if used > limit_mb:
                raise RuntimeError(f"a llama.cpp server uses {used:.0f} MB (limit {limit_mb:.0f}): run stopped")
        await asyncio.sleep(2)


async def drive(mode: str, url: str, system: str, args: argparse.Namespace) -> ModeResult:
    out = ModeResult(mode)
    async with httpx.AsyncClient(timeout=1800) as http:
        started = time.monotonic()
        await asyncio.gather(*(conversation(http, url, system, i, args, mode, out) for i in range(args.conversations)))
        out.seconds = time.monotonic() - started
    return out


def run_all(args: argparse.Namespace, system: str) -> dict[str, ModeResult]:
    """Every mode on servers of its own, all at the same time."""
    with contextlib.ExitStack() as stack:
        fleets = {mode: stack.enter_context(servers(args.servers, args.threads, args.cache_mb)) for mode in MODES}
        everyone = [m for members in fleets.values() for m in members]
        asyncio.run(warm(everyone, system))
        offsets = {id(m): len(m.log()) for m in everyone}
        env = {"LATTICE_LEDGER_PATH": "off", "LATTICE_LOG_TIMING": "0"}
        gateways = {
            mode: stack.enter_context(gateway_process(gateway_toml(members, mode), env=env))
            for mode, members in fleets.items()
        }

        async def together() -> list[ModeResult]:
            drives = asyncio.gather(*(drive(mode, gateways[mode].url, system, args) for mode in MODES))
            watcher = asyncio.ensure_future(watch(everyone, args.max_rss_mb))
            try:
                await asyncio.wait({drives, watcher}, return_when=asyncio.FIRST_COMPLETED)
                if watcher.done():
                    watcher.result()  # raises: a server outgrew its bound
                return await drives
            finally:
                watcher.cancel()
                drives.cancel()

        results = dict(zip(MODES, asyncio.run(together()), strict=True))
        time.sleep(0.5)  # the servers' last log lines
        for mode, members in fleets.items():
            r = results[mode]
            r.evaluated, r.reused, r.eval_seconds = server_figures([m.log()[offsets[id(m)] :] for m in members])
    return results


def lower(gain: float) -> str:
    return f"{gain:.0%} lower" if gain >= 0 else f"{-gain:.0%} higher"


def report(results: dict[str, ModeResult], args: argparse.Namespace, machine: list[str]) -> list[str]:
    rows = []
    for mode in MODES:
        r = results[mode]
        spread = " ".join(f"{k.split('/')[0]}:{v}" for k, v in sorted(r.routed.items()))
        rows.append([mode, f"{r.p(0.5):.2f}", f"{r.p(0.95):.2f}", f"{r.seconds:.1f}", str(r.evaluated), str(r.reused),
                     f"{r.eval_seconds:.1f}", f"{1000 * r.eval_seconds / max(r.evaluated, 1):.0f}", str(len(r.ttft)),
                     str(r.errors), spread])  # fmt: skip
    header = ["mode", "TTFT p50 s", "TTFT p95 s", "total s", "prompt tok re-processed", "prompt tok reused",
              "server prompt s", "ms/token", "requests", "errors", "requests per server"]  # fmt: skip
    least, aff = results["least_loaded"], results["affinity"]
    gain = 1 - aff.p(0.5) / least.p(0.5) if least.p(0.5) else 0.0
    fewer = 1 - aff.evaluated / least.evaluated if least.evaluated else 0.0
    verdict = "met" if gain >= 0.30 else "MISSED"
    versus_rr = 1 - aff.p(0.5) / results["round_robin"].p(0.5) if results["round_robin"].p(0.5) else 0.0
    return [
        *machine,
        f"workload: {args.servers} llama.cpp servers per mode (llama-cpp-python, SmolLM2-135M Q4_1, "
        f"{args.threads} thread(s), RAM prompt cache of {args.cache_mb} MB, n_batch 128), {args.conversations} "
        f"conversations x {args.turns} turns at once, ~1,700-token shared system prompt, "
        f"tool results of {args.tool_chars} chars after up to {args.think:g} s of tool time, "
        f"max_tokens {args.max_tokens}, streamed; the three modes at the same time on servers of their own",
        "",
        table(header, rows),
        "",
        f"affinity vs least-loaded: TTFT p50 {lower(gain)} (goal >= 30 % lower: {verdict}); "
        f"prompt tokens re-processed {fewer:.0%} fewer; total time {aff.seconds:.1f} s vs {least.seconds:.1f} s",
        f"affinity vs round-robin: TTFT p50 {lower(versus_rr)}",
    ]


def main() -> None:
    use_this_checkout()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--servers", type=int, default=2)
    parser.add_argument("--conversations", type=int, default=16)
    parser.add_argument("--turns", type=int, default=6)
    parser.add_argument("--threads", type=int, default=1, help="llama.cpp threads per server")
    parser.add_argument("--max-tokens", type=int, default=16)
    parser.add_argument("--tool-chars", type=int, default=600)
    parser.add_argument("--think", type=float, default=2.0, help="longest tool time between turns, seconds")
    parser.add_argument("--cache-mb", type=int, default=400, help="each server's prompt cache (--cache_size)")
    parser.add_argument("--max-rss-mb", type=float, default=1800, help="stop when a server grows past this")
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--no-docs", action="store_true", help="do not write the figures into docs/benchmarks.md")
    args = parser.parse_args()
    machine = machine_lines()
    print("\n".join(machine), flush=True)
    system = system_prompt()
    results = run_all(args, system)
    for r in results.values():
        for failure in r.failures[:5]:
            print(f"  {r.mode}: {failure}", flush=True)
    lines = report(results, args, machine)
    print("\n" + "\n".join(lines[len(machine) :]))
    if args.json is not None:
        args.json.write_text(json.dumps({m: asdict(r) for m, r in results.items()}, indent=2), encoding="utf-8")
    if not args.no_docs:
        write_section(DOCS, "fleet", "```text\n" + "\n".join(lines) + "\n```")
        print(f"figures written to {DOCS}")


if __name__ == "__main__":
    main()
