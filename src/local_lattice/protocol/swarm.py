"""Wire models of the swarm routes' bodies, for validation of their shape and for /openapi.json, and
the chat model names that mean a swarm.

Unknown fields pass through to every agent (sampling fields, vendor fields); what a spec or
sentinel means is the swarm layer's business.
"""

from __future__ import annotations

from typing import Any

from pydantic import ConfigDict, Field

from local_lattice.protocol.openai import ChatMessage, OpenAIBaseModel

AgentSpecs = str | list[str | dict[str, Any]]

# Chat meta-model names (matched case-insensitively) -> (intent, canonical name).
META_MODELS = {
    "swarmcouncil": ("council", "swarmCouncil"),
    "swarmvote": ("council", "swarmCouncil"),
    "swarm/vote": ("council", "swarmCouncil"),
    "swarmintelligence": ("council", "swarmCouncil"),
    "swarm/fanout": ("fanout", "swarm/fanout"),
    "swarm/pipeline": ("pipeline", "swarm/pipeline"),
}
DEPRECATED = {"swarmintelligence"}


class _SwarmModel(OpenAIBaseModel):
    # Validators are built on the first swarm request, not when the app is imported.
    model_config = ConfigDict(defer_build=True)


class SwarmRequest(_SwarmModel):
    """``/swarm/vote`` and ``/swarm/fanout``."""

    models: AgentSpecs = Field(
        ..., description="Specs (ids, role:…, wildcards, anthropic[:m]) or a sentinel: auto, loaded, *, all."
    )
    messages: list[ChatMessage] = Field(..., min_length=1)
    strategy: str | None = Field(
        None, description="best-of-n | first-success | longest | fanout | majority | synthesize"
    )
    judge: str | dict[str, Any] | None = None
    judge_system: str | None = None
    max_parallel: int | None = Field(None, ge=1, le=64)
    stream: bool = False


class PipelineStep(_SwarmModel):
    name: str = Field(..., min_length=1)
    model: str = Field(..., min_length=1)
    system: str | None = None
    user: str | None = None


class PipelineRequest(_SwarmModel):
    steps: list[PipelineStep] = Field(..., min_length=1)
    messages: list[ChatMessage] = Field(..., min_length=1)
    stream: bool = False


class DebateRequest(_SwarmModel):
    models: AgentSpecs = Field(..., description="At least two debaters (or a sentinel that expands to two).")
    messages: list[ChatMessage] = Field(..., min_length=1)
    rounds: int = Field(2, ge=1, le=8)
    judge: str | dict[str, Any] | None = None
    stream: bool = False
