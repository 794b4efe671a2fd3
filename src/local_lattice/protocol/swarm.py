"""Wire models of the swarm routes' bodies, for validation of their shape and for /openapi.json, and
the chat model names that mean a swarm.

Unknown fields pass through to every agent (sampling fields, vendor fields); what a spec or
sentinel means is the swarm layer's business.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, get_args

from pydantic import BeforeValidator, ConfigDict, Field, ValidationInfo, field_validator

from local_lattice.protocol.openai import ChatMessage, OpenAIBaseModel, integral

MAX_DEBATE_ROUNDS = 6
MAX_SAMPLES = 32
# The swarm strategies and the aliases they are also known by (``swarm/strategies.py`` runs them).
STRATEGY_ALIASES = {
    "best_of_n": "best-of-n",
    "judge": "best-of-n",
    "first_success": "first-success",
    "moa": "synthesize",
    "self_moa": "self-moa",
}
StrategyName = Literal[
    "best-of-n", "first-success", "longest", "fanout", "majority", "synthesize", "self-moa",
    "best_of_n", "judge", "first_success", "moa", "self_moa",
]  # fmt: skip
STRATEGIES = tuple(name for name in get_args(StrategyName) if name not in STRATEGY_ALIASES)

# One spec: something besides blanks. A comma-separated list: at least one spec between the commas.
Spec = Annotated[str, Field(pattern=r"\S")]
SpecList = Annotated[str, Field(pattern=r"[^\s,]", description="Specs separated by commas, or a sentinel.")]

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


class AgentObject(_SwarmModel):
    """One member with its own overrides (``max_tokens``, ``temperature``, ``top_p`` …)."""

    model: Spec
    system: str | None = None
    messages: list[dict[str, Any]] | None = None
    timeout: float | None = None


AgentSpecs = SpecList | Annotated[list[Spec | AgentObject], Field(min_length=1)] | AgentObject


class SwarmRequest(_SwarmModel):
    """``/swarm/vote`` and ``/swarm/fanout``."""

    models: AgentSpecs = Field(
        ..., description="Specs (ids, role:…, wildcards, anthropic[:m]) or a sentinel: auto, loaded, *, all."
    )
    messages: list[ChatMessage] = Field(..., min_length=1)
    strategy: StrategyName | None = Field(
        None, description="best-of-n | first-success | longest | fanout | majority | synthesize | self-moa (or alias)"
    )
    judge: str | AgentObject | None = None
    judge_system: str | None = None
    max_parallel: Annotated[int, Field(ge=1, le=64), BeforeValidator(integral)] | None = None
    samples: Annotated[int, Field(ge=1, le=MAX_SAMPLES), BeforeValidator(integral)] | None = Field(
        None, description="self-moa: samples to draw (default 4); majority: the most to draw, stopping once settled."
    )
    stream: bool = False


class PipelineStep(_SwarmModel):
    name: str | None = Field(None, description="How later steps refer to it ({{name}}); default step<N>.")
    model: Spec
    system: str | None = None
    user: str | None = None


Text = Annotated[str, Field(pattern=r"\S")]


class _Conversation(_SwarmModel):
    """``messages``, or (as the original took them) the text of one user turn in ``input`` or ``prompt``."""

    model_config = ConfigDict(
        json_schema_extra={
            "anyOf": [
                {"required": ["messages"], "properties": {"messages": {"type": "array"}}},
                {"required": ["input"], "properties": {"input": {"type": "string"}}},
                {"required": ["prompt"], "properties": {"prompt": {"type": "string"}}},
            ]
        }
    )

    input: Text | None = None
    prompt: Text | None = None
    # Declared after the text fields, so its check sees them (and names ``messages`` when all are missing).
    messages: Annotated[list[ChatMessage], Field(min_length=1)] | None = Field(None, validate_default=True)

    @field_validator("messages")
    @classmethod
    def _has_a_turn(cls, value: Any, info: ValidationInfo) -> Any:
        if value is None and info.data.get("input") is None and info.data.get("prompt") is None:
            raise ValueError("required: a non-empty list of message objects (or 'input' text)")
        return value


class PipelineRequest(_Conversation):
    steps: list[PipelineStep] = Field(..., min_length=1)
    stream: bool = False


# Debaters: a sentinel (it expands to the models there are), two or more specs separated by commas,
# or a list of two or more. (JSON Schema patterns have no case-insensitive flag: sentinels in lower case.)
DebateSpecList = Annotated[str, Field(pattern=r"^\s*(?:auto|loaded|\*|all|all-loaded)\s*$|[^\s,].*,.*[^\s,]")]
DebateSpecs = DebateSpecList | Annotated[list[Spec | AgentObject], Field(min_length=2)]


class DebateRequest(_Conversation):
    models: DebateSpecs | None = Field(
        None,
        description="At least two debaters (or a sentinel that expands to two); "
        "without them role:reasoner, role:fast and role:coder.",
    )
    rounds: Annotated[int, Field(ge=1, le=MAX_DEBATE_ROUNDS), BeforeValidator(integral)] = 2
    judge: str | AgentObject | None = None
    stream: bool = False
