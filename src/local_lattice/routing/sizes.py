"""What a model id says of its size: the parameter count written as a size token, the weights'
precision, and the latency tier and memory estimate they imply.

A size token stands alone between separators (``-8b-``, ``_8B``, ``8b`` at the end, ``0.5b``,
``135m``, ``8x7b``): ``8bit`` is a precision, never eight billion parameters, and a mixture of
experts' active count (``-a3b``) is not the model's size. Pure functions over the id; no I/O.
"""

from __future__ import annotations

import re
from typing import Any

_SIZE = re.compile(r"(?<![a-z0-9.])(?:(\d+)x)?(\d+(?:\.\d+)?)([bm])(?![a-z0-9])")
_BITS = re.compile(r"(?<![a-z0-9])(\d{1,2})-?bits?(?![a-z0-9])")
_GGUF_QUANT = re.compile(r"(?<![a-z0-9])i?q(\d)(?:_[a-z0-9]+)*(?![a-z0-9])")
_NAMED_PRECISION = (
    (re.compile(r"(?<![a-z0-9])(?:mx|nv)?fp4(?![a-z0-9])"), 4.0),
    (re.compile(r"(?<![a-z0-9])(?:fp8|int8|w8a8)(?![a-z0-9])"), 8.0),
    (re.compile(r"(?<![a-z0-9])int4(?![a-z0-9])"), 4.0),
    (re.compile(r"(?<![a-z0-9])(?:bf16|fp16|f16)(?![a-z0-9])"), 16.0),
    (re.compile(r"(?<![a-z0-9])(?:fp32|f32)(?![a-z0-9])"), 32.0),
)
# Local weights are mostly 4-bit quantized (Q4_K_M is about 4.8 bits a weight with its scales).
ASSUMED_BITS = 4.5
OVERHEAD = 1.1  # the runtime's buffers and the cache of a short context, on top of the weights
FAST_BELOW_B = 10.0
SLOW_FROM_B = 30.0


def is_size_token(text: str) -> bool:
    """Whether ``text`` is itself a size token (``8b``, ``0.5b``, ``135m``, ``8x7b``)."""
    return _SIZE.fullmatch(text.strip().lower()) is not None


def size_tokens(model_id: str) -> frozenset[str]:
    """The size tokens written in ``model_id``, lower-case (``qwen3-30b-a3b-8bit`` → ``{"30b"}``)."""
    return frozenset(match.group(0) for match in _SIZE.finditer(model_id.lower()))


def parameter_counts(model_id: str) -> list[float]:
    """Every size token in ``model_id``, in billions of parameters (``8x7b`` counts 56)."""
    counts = []
    for experts, number, unit in _SIZE.findall(model_id.lower()):
        value = float(number) / (1000.0 if unit == "m" else 1.0)
        counts.append(value * int(experts) if experts else value)
    return counts


def parameters_b(model_id: str) -> float | None:
    """The model's size in billions of parameters (the largest size token), or None when unwritten."""
    counts = parameter_counts(model_id)
    return max(counts) if counts else None


def weight_bits(model_id: str) -> float | None:
    """Bits a weight, as the id writes them (``4bit``, ``q4_k_m``, ``mxfp4``, ``bf16`` …), or None."""
    text = model_id.lower()
    found = _BITS.search(text) or _GGUF_QUANT.search(text)
    if found is not None:
        return float(found.group(1))
    for pattern, bits in _NAMED_PRECISION:
        if pattern.search(text):
            return bits
    return None


def latency_tier(params_b: float) -> str:
    if params_b < FAST_BELOW_B:
        return "fast"
    return "medium" if params_b < SLOW_FROM_B else "slow"


def memory_gb(params_b: float, bits: float | None) -> float:
    return round(params_b * (bits or ASSUMED_BITS) / 8.0 * OVERHEAD, 1)


def size_profile(model_id: str) -> dict[str, Any]:
    """The profile fields the id's size implies (``latency_tier``, ``memory_gb_estimate``), or none."""
    params = parameters_b(model_id)
    if params is None:
        return {}
    return {"latency_tier": latency_tier(params), "memory_gb_estimate": memory_gb(params, weight_bits(model_id))}
