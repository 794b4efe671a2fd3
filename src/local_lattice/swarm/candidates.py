"""Candidate rows: the outcome of one agent call, the original's ``error_kind`` classification,
usage totals, and the 502 raised when every agent failed. Pure; no I/O.

A row carries our fields and the original's beside them: ``error_detail`` is the failure as text
(the original's), ``error_type``/``error_code`` are our error's type and code; ``spec`` is what the
caller asked for, which the original calls ``agent_id`` in its fanout ``responses[]``."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from local_lattice.errors import (
    BackendUnavailable,
    DeadlineExceeded,
    InvalidRequest,
    LatticeError,
    ModelNotFound,
    UpstreamError,
    UpstreamStatusError,
)
from local_lattice.types import JSONObject, Usage

ErrorKind = Literal[
    "no_models_loaded",
    "model_not_resolved",
    "oom",
    "model_crashed",
    "empty_response",
    "timeout",
    "connection_error",
    "upstream_4xx",
    "upstream_5xx",
    "config_error",
    "anthropic_error",
    "litellm_error",
    "unknown",
]

_OOM = re.compile(r"\b(out of memory|oom|resource exhausted|killed|bad_alloc|cannot allocate)\b", re.IGNORECASE)
_STATUS = re.compile(r"upstream_(\d{3})")


@dataclass(slots=True)
class Candidate:
    """One agent's answer or failure, as the original's candidate row."""

    agent_id: str
    model: str
    ok: bool = False
    text: str = ""
    error: str | None = None
    error_kind: ErrorKind | None = None
    http_status: int | None = None
    error_detail: str | None = None
    error_type: str | None = None
    error_code: str | None = None
    latency_ms: float = 0.0
    response: JSONObject | None = None
    usage: Usage = field(default_factory=Usage)
    routed_to: str | None = None
    cancelled: bool = False
    finish_reason: str | None = None  # the model's own: "length" means the answer was cut off
    resolution: str | None = None  # X-Model-Resolution of its routing (a fallback, a role's entry …)
    spec: str = ""

    def row(self) -> JSONObject:
        return {
            "agent_id": self.agent_id,
            "spec": self.spec or self.model,
            "model": self.model,
            "routed_to": self.routed_to,
            "resolution": self.resolution,
            "ok": self.ok,
            "error": self.error,
            "error_kind": self.error_kind,
            "http_status": self.http_status,
            "error_detail": self.error_detail,
            "error_type": self.error_type,
            "error_code": self.error_code,
            "latency_ms": round(self.latency_ms, 3),
            "response": self.response,
            "text": self.text,
            "finish_reason": self.finish_reason,
            "usage": self.usage.as_dict(),
            **({"cancelled": True} if self.cancelled else {}),
        }

    def original_row(self) -> JSONObject:
        """The original's fanout row: ``agent_id`` is the caller's spec, latency whole milliseconds."""
        return {
            "agent_id": self.spec or self.model,
            "model": self.model,
            "ok": self.ok,
            "text": self.text,
            "error": self.error,
            "error_kind": self.error_kind,
            "http_status": self.http_status,
            "error_detail": self.error_detail,
            "latency_ms": round(self.latency_ms),
            "response": self.response,
        }


def classify(exc: BaseException) -> tuple[ErrorKind, int | None]:
    """The original's error kind (and an HTTP status when one is known) for a failed call."""
    if isinstance(exc, TimeoutError):
        return "timeout", None
    if isinstance(exc, DeadlineExceeded):
        return "timeout", exc.status
    if not isinstance(exc, LatticeError):
        return "unknown", None
    status: int | None = exc.status
    match = _STATUS.search(exc.code or "")
    if match:
        status = int(match.group(1))
    kind: ErrorKind
    if _OOM.search(exc.message):
        kind = "oom"
    elif isinstance(exc, ModelNotFound):
        kind = "no_models_loaded" if exc.code == "no_models_loaded" else "model_not_resolved"
    elif exc.code == "upstream_timeout":
        kind = "timeout"
    elif isinstance(exc, BackendUnavailable):
        kind = "upstream_4xx" if status == 429 else "connection_error"
    elif isinstance(exc, UpstreamStatusError):
        kind = "upstream_4xx"
    elif isinstance(exc, UpstreamError):
        if "anthropic" in exc.backend.lower():
            kind = "anthropic_error"
        elif status is not None and status != 502:
            kind = "upstream_5xx"
        else:
            kind = "model_crashed"
    elif isinstance(exc, InvalidRequest):
        kind = "config_error"
    else:
        kind = "unknown"
    return kind, status


def total_usage(candidates: Sequence[Candidate]) -> Usage:
    return Usage(
        prompt_tokens=sum(c.usage.prompt_tokens for c in candidates),
        completion_tokens=sum(c.usage.completion_tokens for c in candidates),
    )


def error_kinds_header(candidates: Sequence[Candidate]) -> str:
    counts = Counter(c.error_kind for c in candidates if c.error_kind)
    return ",".join(f"{kind}={count}" for kind, count in sorted(counts.items()))


class SwarmFailed(UpstreamError):
    """Every agent failed. The details sit in the OpenAI envelope and, as in the original, at the top."""

    def envelope(self) -> dict[str, Any]:
        body = super().envelope()
        body["error_details"] = self.extra.get("error_details")
        return body


EMPTY_HINT = (
    "every answer was empty, which usually means max_tokens is too low (reasoning models can spend it all "
    "on hidden reasoning): raise max_tokens and retry; each agent's response keeps what it produced"
)


def all_failed(candidates: Sequence[Candidate], summary: str, details: dict[str, Any] | None = None) -> SwarmFailed:
    """The 502 for a swarm whose agents all failed: ``error_details`` plus ``X-Swarm-Error-Kinds``.
    ``upstream_statuses`` counts the statuses seen, by status (the original's map)."""
    counts = Counter(c.error_kind or "unknown" for c in candidates)
    if set(counts) == {"empty_response"}:
        summary = f"{summary}: {EMPTY_HINT}"
    statuses = Counter(str(c.http_status) for c in candidates if c.http_status is not None)
    error_details = {
        "summary": summary,
        "agent_count": len(candidates),
        "kinds": dict(counts),
        "upstream_statuses": dict(sorted(statuses.items())),
        "agents": [c.row() for c in candidates],
        **(details or {}),
    }
    failed = SwarmFailed(
        f"{summary} ({', '.join(f'{k}={v}' for k, v in sorted(counts.items()))})",
        code="swarm_all_failed",
        headers={"X-Swarm-Error-Kinds": error_kinds_header(candidates)},
        extra={"error_details": error_details},
    )
    if set(counts) == {"model_not_resolved"}:
        # Nothing ran: the request named only models that are not there — the client's 404, not a 502.
        failed.status, failed.type, failed.code = 404, "invalid_request_error", "model_not_found"
    return failed
