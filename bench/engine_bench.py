"""The in-process engine benchmark: SmolLM2 through the gateway vs raw llama-cpp-python, one run.

    python bench/engine_bench.py [--rounds 5] [--tokens 128] [--switches 4]

Raw: ``llama_cpp.Llama`` in this process, streaming a chat completion. Gateway: ``lattice serve``
with no config (the default llamacpp backend) as a real process, streamed over HTTP with
``include_usage``. Rounds alternate raw and gateway so both see the same machine; figures are
medians. Decode speed is counted from the first to the last token (so it excludes prompt time);
time to first token is from sending the request. The model switch time is measured on a second
gateway with ``MAX_CONCURRENT_MODELS=1`` serving SmolLM2 and Gemma 3 270M: a one-token request to
the other model minus a one-token request to the model already resident.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.support.models import GEMMA_ID, SMOLLM2_ID, gemma3_path, smollm2_path
from tests.support.procs import PYTHON, RunningProcess, free_port, run_process
from tests.support.servers import gateway_process

from bench.report import machine_lines, table

PROMPT = "Write a long story about a lighthouse keeper and a storm."


def messages() -> list[dict[str, str]]:
    return [{"role": "user", "content": PROMPT}]


def raw_round(llm: object, tokens: int) -> tuple[float, float, int]:
    """(time to first token s, decode tokens/s, tokens) for one raw streamed completion."""
    started = time.perf_counter()
    first = last = 0.0
    count = 0
    for chunk in llm.create_chat_completion(  # type: ignore[attr-defined]
        messages=messages(), max_tokens=tokens, temperature=0, stream=True
    ):
        if chunk["choices"] and chunk["choices"][0]["delta"].get("content"):
            last = time.perf_counter()
            first = first or last
            count += 1
    return first - started, (count - 1) / (last - first), count


def gateway_round(client: httpx.Client, tokens: int) -> tuple[float, float, int]:
    body = {
        "model": SMOLLM2_ID,
        "messages": messages(),
        "max_tokens": tokens,
        "temperature": 0,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    started = time.perf_counter()
    first = last = 0.0
    count = 0
    with client.stream("POST", "/v1/chat/completions", json=body) as response:
        for line in response.iter_lines():
            if not line.startswith("data: {"):
                continue
            chunk = orjson.loads(line[6:])
            if chunk["choices"] and chunk["choices"][0]["delta"].get("content"):
                last = time.perf_counter()
                first = first or last
            if chunk.get("usage"):
                count = chunk["usage"]["completion_tokens"]
    return first - started, (count - 1) / (last - first), count


@contextlib.contextmanager
def bare_gateway(home: Path) -> Iterator[RunningProcess]:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {"HOME": str(home), "LATTICE_CONFIG": "", "LM_STUDIO_URL": "", "LATTICE_LOG_TIMING": "0"}
    argv = [PYTHON, "-m", "local_lattice", "serve", "--port", str(port)]
    with run_process(argv, ready_url=base + "/healthz", base_url=base, env=env, timeout=120) as proc:
        yield proc


def throughput(rounds: int, tokens: int) -> list[tuple[str, float, float, int]]:
    import llama_cpp

    from local_lattice.backends.llamacpp import default_threads

    threads, cores = default_threads(), os.cpu_count() or 1

    def open_raw(n: int) -> object:
        return llama_cpp.Llama(model_path=str(smollm2_path()), n_ctx=4096, n_threads=n, verbose=False)

    raw_same, raw_all = open_raw(threads), open_raw(cores)
    runs: dict[str, list[tuple[float, float, int]]] = {"gateway": [], "same": [], "all": []}
    with (
        tempfile.TemporaryDirectory() as home,
        bare_gateway(Path(home)) as gw,
        httpx.Client(base_url=gw.url, timeout=300) as client,
    ):
        gateway_round(client, 8)  # load the model and warm up every side
        raw_round(raw_same, 8)
        raw_round(raw_all, 8)
        for i in range(rounds):
            runs["gateway"].append(gateway_round(client, tokens))
            runs["same"].append(raw_round(raw_same, tokens))
            runs["all"].append(raw_round(raw_all, tokens))
            rates = ", ".join(f"{k} {v[-1][1]:.1f}" for k, v in runs.items())
            print(f"  round {i + 1} tok/s: {rates}", flush=True)
    for llm in (raw_same, raw_all):
        llm.close()  # type: ignore[attr-defined]

    def summary(name: str, key: str) -> tuple[str, float, float, int]:
        got = runs[key]
        return name, statistics.median(r[0] for r in got), statistics.median(r[1] for r in got), got[0][2]

    return [
        summary(f"raw llama-cpp-python, {threads} thread(s)", "same"),
        summary(f"through the gateway, {threads} thread(s)", "gateway"),
        summary(f"raw llama-cpp-python, {cores} thread(s)", "all"),
    ]


def switch_times(switches: int) -> tuple[float, float]:
    """Median latency (ms) of a one-token request that needs a model switch, and of one that does not."""
    gemma = gemma3_path(Path(tempfile.gettempdir()))
    config = f"""
[engines]
max_concurrent_models = 1

[[backends]]
name = "local"
type = "llamacpp"
discover = false
model_files = {{ "{SMOLLM2_ID}" = "{smollm2_path()}", "{GEMMA_ID}" = "{gemma}" }}
"""
    switch: list[float] = []
    warm: list[float] = []
    with (
        tempfile.TemporaryDirectory() as home,
        gateway_process(config, env={"HOME": home}) as gw,
        httpx.Client(base_url=gw.url, timeout=300) as client,
    ):

        def one(model: str) -> float:
            body = {"model": model, "prompt": "Hello", "max_tokens": 1, "temperature": 0}
            started = time.perf_counter()
            answer = client.post("/v1/completions", json=body)
            if answer.status_code != 200:
                raise SystemExit(f"{model}: {answer.status_code} {answer.text}")
            return (time.perf_counter() - started) * 1000

        one(SMOLLM2_ID)
        for i in range(switches):
            model = (GEMMA_ID, SMOLLM2_ID)[i % 2]
            switch.append(one(model))
            warm.append(one(model))
    return statistics.median(switch), statistics.median(warm)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5, help="alternating raw/gateway rounds (default 5)")
    parser.add_argument("--tokens", type=int, default=128, help="max_tokens per round (default 128)")
    parser.add_argument("--switches", type=int, default=4, help="model switches to time (default 4)")
    args = parser.parse_args()
    print("\n".join(machine_lines()), flush=True)
    print(f"\nSmolLM2-135M Q4_1, {args.tokens} tokens, temperature 0, {args.rounds} alternating rounds", flush=True)
    rows = throughput(args.rounds, args.tokens)
    print()
    print(
        table(
            ["path", "ttft ms", "decode tok/s", "tokens"],
            [[n, f"{t * 1000:.1f}", f"{r:.1f}", str(c)] for n, t, r, c in rows],
        )
    )
    (_, raw_ttft, raw_rate, _), (_, gw_ttft, gw_rate, _), _ = rows
    print(f"\ngateway decode speed = {gw_rate / raw_rate * 100:.1f}% of raw at the same thread count (target >= 95%)")
    print(f"added time to first token = {(gw_ttft - raw_ttft) * 1000:+.1f} ms (HTTP, routing, SSE)")
    print(f"\nmodel switch, MAX_CONCURRENT_MODELS=1, {args.switches} switches (SmolLM2 <-> Gemma 3 270M)", flush=True)
    switch, warm = switch_times(args.switches)
    print(f"one-token request: switching {switch:.0f} ms, model resident {warm:.0f} ms")
    print(f"model switch time = {switch - warm:.0f} ms (unload + load + first prompt)")


if __name__ == "__main__":
    main()
