"""OpenAI wire models for the requests the gateway validates.

They mirror OpenAI's field names and let unknown fields through untouched (tools, response_format,
vendor fields …), so a backend receives what the client sent. Validation here is about shape; the
meaning of ``model`` is the routing layer's business, so ``model`` accepts any JSON value.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class OpenAIBaseModel(BaseModel):
    model_config = ConfigDict(extra="allow", allow_inf_nan=False)


class ChatMessage(OpenAIBaseModel):
    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    content: str | list[dict[str, Any]] | None = None
    name: str | None = None


class StreamOptions(OpenAIBaseModel):
    include_usage: bool | None = None


class QueueOptions(OpenAIBaseModel):
    """The original's admission controls in the body (read by the admission layer)."""

    priority: Any = None
    max_queue_wait_ms: float | None = None
    deadline_ms: float | None = None


class SamplingFields(OpenAIBaseModel):
    """Fields chat and text completions share."""

    model: Any = None
    stream: bool = False
    stream_options: StreamOptions | None = None
    max_tokens: int | None = Field(None, ge=1)
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, ge=0, le=1)
    n: int | None = Field(None, ge=1, le=16)
    stop: str | list[str] | None = None
    seed: int | None = None
    user: str | None = None
    queue: QueueOptions | None = None


class ChatCompletionRequest(SamplingFields):
    messages: list[ChatMessage] = Field(..., min_length=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    tools: list[dict[str, Any]] | None = None
    response_format: dict[str, Any] | None = None


class CompletionRequest(SamplingFields):
    prompt: str | list[str] = Field(...)


class EmbeddingRequest(OpenAIBaseModel):
    model: Any = None
    input: str | list[str] | list[int] | list[list[int]] = Field(...)
    encoding_format: Literal["float", "base64"] | None = None
    dimensions: int | None = Field(None, ge=1)
