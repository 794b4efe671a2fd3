"""OpenAI wire models for the requests the gateway validates.

They mirror OpenAI's field names and let unknown fields through untouched (tools, response_format,
vendor fields …), so a backend receives what the client sent. Validation here is about shape; the
meaning of ``model`` is the routing layer's business, so ``model`` accepts any JSON value.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field


class OpenAIBaseModel(BaseModel):
    # strict: JSON types are taken as sent (no `false` read as 0.0, no `true` as token id 1).
    model_config = ConfigDict(extra="allow", allow_inf_nan=False, strict=True)


# OpenAI's spec: a list of content parts has at least one part.
def integral(value: Any) -> Any:
    """JSON's ``3.0`` is the integer 3 (JSON Schema agrees); other floats stay floats and fail."""
    return int(value) if isinstance(value, float) and value.is_integer() else value


# Strict models refuse `true` for a number; this keeps integral floats acceptable as integers.
# Bounded to 64 bits, as the document says: larger numbers are not ints any client means.
Int = Annotated[int, Field(ge=-(2**63), le=2**63 - 1), BeforeValidator(integral)]
PositiveInt = Annotated[int, Field(ge=1, le=2**63 - 1), BeforeValidator(integral)]


def whole_number(value: Any) -> int | None:
    """An integer as JSON may write it (``3`` or ``3.0``), else None: for code reading a raw body."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    return int(value) if isinstance(value, float) and value.is_integer() else None


Content = str | Annotated[list[dict[str, Any]], Field(min_length=1)]

# Control characters (C0, DEL, C1): no model id has them, and a spec is echoed into headers.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_PRINTABLE = r"^[^\x00-\x1f\x7f-\x9f]*$"


def _no_control_characters(value: Any) -> Any:
    if isinstance(value, str) and _CONTROL.search(value):
        raise ValueError("a model spec must not contain control characters")
    return value


# ``model``: any JSON value (its meaning is routing's), but a string without control characters.
# (A JSON Schema ``pattern`` applies to strings only, so the document says just that.)
ModelSpec = Annotated[Any, AfterValidator(_no_control_characters), Field(json_schema_extra={"pattern": _PRINTABLE})]


class SystemMessage(OpenAIBaseModel):
    role: Literal["system", "developer"]
    content: Content
    name: str | None = None


class UserMessage(OpenAIBaseModel):
    role: Literal["user"]
    content: Content
    name: str | None = None


class AssistantMessage(OpenAIBaseModel):
    role: Literal["assistant"]
    content: Content | None = None
    name: str | None = None
    tool_calls: list[dict[str, Any]] | None = None


class ToolMessage(OpenAIBaseModel):
    role: Literal["tool"]
    content: Content
    tool_call_id: str


class FunctionMessage(OpenAIBaseModel):
    role: Literal["function"]
    content: str | None
    name: str


# What each role must carry follows OpenAI's spec (a tool message without tool_call_id is refused
# here rather than passed on for the upstream to fail on).
ChatMessage = Annotated[
    SystemMessage | UserMessage | AssistantMessage | ToolMessage | FunctionMessage, Field(discriminator="role")
]


class StreamOptions(OpenAIBaseModel):
    include_usage: bool | None = None


class QueueOptions(OpenAIBaseModel):
    """The original's admission controls in the body (read by the admission layer)."""

    priority: Any = None  # non-numeric or boolean → the default priority
    max_queue_wait_ms: float | None = Field(None, ge=0, description="Longest wait in the queue (ms).")
    deadline_ms: float | None = Field(None, ge=0, description="Relative ms, or epoch ms above 3e9.")


class SamplingFields(OpenAIBaseModel):
    """Fields chat and text completions share."""

    model: ModelSpec = None
    stream: bool = False
    stream_options: StreamOptions | None = None
    max_tokens: PositiveInt | None = None
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, ge=0, le=1)
    n: Annotated[int, Field(ge=1, le=16), BeforeValidator(integral)] | None = None
    stop: str | list[str] | None = None
    seed: Int | None = None
    user: str | None = None
    queue: QueueOptions | None = None


class ChatCompletionRequest(SamplingFields):
    messages: list[ChatMessage] = Field(..., min_length=1)
    max_completion_tokens: PositiveInt | None = None
    tools: list[dict[str, Any]] | None = None
    response_format: dict[str, Any] | None = None


class CompletionRequest(SamplingFields):
    prompt: str | list[str] = Field(...)


class EmbeddingRequest(OpenAIBaseModel):
    model: ModelSpec = None
    input: str | list[str] | list[Int] | list[list[Int]] = Field(...)
    encoding_format: Literal["float", "base64"] | None = None
    dimensions: PositiveInt | None = None


class ResolveRequest(SamplingFields):
    """``POST /v1/resolve``: the body a chat, completions or embeddings request would send (its
    shape tells which, or ``endpoint`` says so), validated as that request would be."""

    endpoint: Literal["chat", "completions", "embeddings"] | None = None
    messages: Annotated[list[ChatMessage], Field(min_length=1)] | None = None
    prompt: str | list[str] | None = None
    input: str | list[str] | list[Int] | list[list[Int]] | None = None
    max_completion_tokens: PositiveInt | None = None
    tools: list[dict[str, Any]] | None = None
    response_format: dict[str, Any] | None = None
