"""How often SmolLM2-135M's forced tool calls parse, with and without grammar-constrained decoding.

    python bench/tool_call_bench.py [--tries 50] [--temperature 0.8]

Both sides run the real in-process llama.cpp backend on the real model, with the same prompt (the
model's chat template, the tools note the engine writes, the user's question), the same sampling
and the same seeds; they differ only in the grammar. "With grammar" is the engine's own answer to
``tool_choice: {"type": "function", ...}``; "prompting only" decodes the same prompt free and reads
its text the way a lenient client would (``<tool_call>`` tags and code fences stripped, the first
JSON object taken). A try *parses* when that is JSON with the function's name and an arguments
object; it is *valid* when the arguments also validate against the function's parameter schema.
Tries cycle through four functions and questions. Figures are counts of ``--tries``; times are
medians per try and tokens/s is all tokens over all time (prompt included), measured on a shared
machine: compare the two rows of one run, not absolute times.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import jsonschema

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.support.engines import engine_backends
from tests.support.models import SMOLLM2_ID, smollm2_path

from bench.report import machine_lines, table
from local_lattice.engines.engine import EngineBackend, text_of
from local_lattice.engines.sampling import sampling_of
from local_lattice.engines.structured import chat_turns, shape_of
from local_lattice.types import BackendRequest

CITY = {"type": "string", "maxLength": 32}
CASES: list[tuple[str, str, dict[str, Any]]] = [
    (
        "What is the weather in Paris?",
        "get_weather",
        {
            "type": "object",
            "properties": {"city": CITY, "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}},
            "required": ["city", "unit"],
        },
    ),
    (
        "Book a table for 4 people at 7pm.",
        "book_table",
        {
            "type": "object",
            "properties": {"people": {"type": "integer", "minimum": 1}, "time": {"type": "string", "maxLength": 16}},
            "required": ["people", "time"],
        },
    ),
    (
        "Send an email to ana@example.com saying hello.",
        "send_email",
        {
            "type": "object",
            "properties": {"to": {"type": "string", "maxLength": 64}, "body": {"type": "string", "maxLength": 80}},
            "required": ["to", "body"],
        },
    ),
    (
        "Convert 12 miles to kilometres.",
        "convert_units",
        {
            "type": "object",
            "properties": {"value": {"type": "number"}, "from": CITY, "to": CITY},
            "required": ["value", "from", "to"],
        },
    ),
]


def request(index: int, temperature: float) -> BackendRequest:
    question, name, parameters = CASES[index % len(CASES)]
    tool = {"type": "function", "function": {"name": name, "description": question, "parameters": parameters}}
    body = {
        "messages": [{"role": "user", "content": question}],
        "tools": [tool],
        "tool_choice": {"type": "function", "function": {"name": name}},
        "max_tokens": 160,
        "temperature": temperature,
        "seed": index,
    }
    return BackendRequest("chat", SMOLLM2_ID, body)


def judge(index: int, envelope: Any) -> tuple[bool, bool]:
    """(parses, valid) of what a try produced, as ``{"name", "arguments"}``."""
    _, name, parameters = CASES[index % len(CASES)]
    if not isinstance(envelope, dict) or envelope.get("name") != name:
        return False, False
    if not isinstance(envelope.get("arguments"), dict):
        return False, False
    try:
        jsonschema.validate(envelope["arguments"], parameters)
    except jsonschema.ValidationError:
        return True, False
    return True, True


def lenient_json(text: str) -> Any:
    """The first JSON object in free text (tags and fences a model may add stripped), or None."""
    cleaned = text.replace("<tool_call>", "").replace("</tool_call>", "").replace("```json", "").replace("```", "")
    start = cleaned.find("{")
    if start < 0:
        return None
    try:
        value, _ = json.JSONDecoder().raw_decode(cleaned[start:])
    except ValueError:
        return None
    return value


Try = tuple[bool, bool, float, int]  # parses, valid, seconds, tokens generated


async def with_grammar(backend: EngineBackend[Any], index: int, temperature: float) -> Try:
    started = time.perf_counter()
    answer = json.loads((await backend.complete(request(index, temperature))).content)
    elapsed = time.perf_counter() - started
    tokens = answer["usage"]["completion_tokens"]
    calls = answer["choices"][0]["message"].get("tool_calls") or []
    if not calls:
        return False, False, elapsed, tokens
    function = calls[0]["function"]
    try:
        arguments = json.loads(function["arguments"])
    except ValueError:
        return False, False, elapsed, tokens
    return (*judge(index, {"name": function["name"], "arguments": arguments}), elapsed, tokens)


async def prompting_only(backend: EngineBackend[Any], index: int, temperature: float) -> Try:
    req = request(index, temperature)
    shape = shape_of(req.body)
    assert shape is not None
    sampling = sampling_of(req.body, 160)
    lease = await backend.manager.acquire(backend.spec(await backend.local_model(SMOLLM2_ID)))
    loaded = lease.handle

    def run() -> list[str]:
        with loaded.lock:
            tokens = backend.encode_chat(loaded, chat_turns(req.body["messages"], text_of, shape.note()))
            pieces = []
            for count, piece in enumerate(backend.token_steps(loaded, tokens, sampling), 1):
                if piece is None or count > sampling.max_tokens:
                    break
                pieces.append(piece)
            return pieces

    started = time.perf_counter()
    try:
        pieces = await asyncio.to_thread(run)
    finally:
        lease.release()
    return (*judge(index, lenient_json("".join(pieces))), time.perf_counter() - started, len(pieces))


async def measure(tries: int, temperature: float) -> dict[str, list[Try]]:
    results: dict[str, list[Try]] = {"grammar": [], "prompt": []}
    with tempfile.TemporaryDirectory() as home:
        spec = {"name": "local", "type": "llamacpp", "n_ctx": 2048, "model_files": {SMOLLM2_ID: str(smollm2_path())}}
        async with engine_backends(Path(home), [spec]) as backends:
            backend = backends["local"]
            await with_grammar(backend, 0, temperature)  # load and warm up
            for index in range(tries):
                results["grammar"].append(await with_grammar(backend, index, temperature))
                results["prompt"].append(await prompting_only(backend, index, temperature))
                if (index + 1) % 10 == 0:
                    got = {k: sum(r[0] for r in v) for k, v in results.items()}
                    print(f"  {index + 1} tries: parsed {got}", flush=True)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tries", type=int, default=50, help="forced calls per side (default 50)")
    parser.add_argument("--temperature", type=float, default=0.8, help="sampling temperature (default 0.8)")
    args = parser.parse_args()
    print("\n".join(machine_lines()), flush=True)
    print(f"\nSmolLM2-135M Q4_1, {args.tries} forced tool calls per side, temperature {args.temperature}", flush=True)
    results = asyncio.run(measure(args.tries, args.temperature))
    rows = []
    for key, label in (("grammar", "with grammar (the engine)"), ("prompt", "prompting only")):
        got = results[key]
        parsed, valid = sum(r[0] for r in got), sum(r[1] for r in got)
        median_ms = statistics.median(r[2] for r in got) * 1000
        rate = sum(r[3] for r in got) / sum(r[2] for r in got)
        tokens = statistics.median(r[3] for r in got)
        rows.append(
            [label, f"{parsed}/{len(got)}", f"{valid}/{len(got)}", f"{median_ms:.0f}", f"{tokens:.0f}", f"{rate:.1f}"]
        )
    print()
    print(table(["decoding", "parse", "valid", "median ms/try", "median tokens", "tokens/s"], rows))


if __name__ == "__main__":
    main()
