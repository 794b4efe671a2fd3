"""Resolve a 5-spec priority list over 500 models and print the median time per resolution.

The gateway builds the search index once per inventory snapshot, so the headline figure reuses it;
the figure with a fresh index per call is printed alongside for comparison.
Run: PYTHONPATH=src python bench/resolve_bench.py
"""

from __future__ import annotations

import statistics
import time

from local_lattice.routing.index import ModelIndex
from local_lattice.routing.resolver import resolve
from local_lattice.types import ModelInfo

FAMILIES = ("llama-3.2", "qwen2.5", "mistral", "gemma-3", "phi-4", "granite-4.1", "deepseek-r1", "smollm2")
SIZES = ("0.5b", "1b", "3b", "7b", "8b", "14b", "32b", "70b")
SPEC = "role:reasoner-xl,vendor/missing-model,*nothing-here*,role:coder,qwen2.5-coder-7b"


def inventory(count: int = 500) -> list[ModelInfo]:
    models = []
    for i in range(count):
        family = FAMILIES[i % len(FAMILIES)]
        size = SIZES[(i // len(FAMILIES)) % len(SIZES)]
        models.append(
            ModelInfo(id=f"org{i % 13}/{family}-{size}-instruct-q{i % 7}", backend=f"b{i % 4}", loaded=i % 3 == 0)
        )
    models.append(ModelInfo(id="qwen2.5-coder-7b", backend="b1", loaded=True))
    return models[:count]


def measure(fn: object, rounds: int = 7, per_round: int = 2000) -> float:
    """Median microseconds per call over ``rounds`` rounds."""
    assert callable(fn)
    samples = []
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(per_round):
            fn()
        samples.append((time.perf_counter() - start) / per_round * 1e6)
    return statistics.median(samples)


def main() -> None:
    models = inventory()
    models[-1] = ModelInfo(id="qwen2.5-coder-7b", backend="b1", loaded=True)
    index = ModelIndex.build(models, "chat")
    result = resolve(SPEC, models, index=index)
    warm = measure(lambda: resolve(SPEC, models, index=index))
    cold = measure(lambda: resolve(SPEC, models), per_round=200)
    print(f"models={len(models)} spec={SPEC!r} -> {result.chosen.id} ({result.explanation})")
    print(f"resolve, index reused (as the gateway does): median {warm:.1f} us")
    print(f"resolve, index rebuilt every call:          median {cold:.1f} us")


if __name__ == "__main__":
    main()
