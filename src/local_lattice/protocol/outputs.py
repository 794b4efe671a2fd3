"""Wire models of what the gateway answers, for the OpenAPI document and for tests.

They state what the gateway guarantees and let everything else through: answers from a backend are
passed on as the backend wrote them, so only the fields the gateway itself relies on are required.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict


class _Open(BaseModel):
    # Only the OpenAPI document and tests use these: their schemas are built when first asked for.
    model_config = ConfigDict(extra="allow", defer_build=True)


class ErrorBody(_Open):
    message: str
    type: str
    code: str | None = None
    param: str | None = None


class ErrorEnvelope(_Open):
    """Every error the gateway answers, whatever the route or status."""

    error: ErrorBody


class ChatCompletion(_Open):
    choices: list[dict[str, Any]]
    object: str | None = None
    model: str | None = None
    usage: dict[str, Any] | None = None


class TextCompletion(_Open):
    choices: list[dict[str, Any]]
    object: str | None = None
    model: str | None = None
    usage: dict[str, Any] | None = None


class EmbeddingList(_Open):
    data: list[dict[str, Any]]
    object: str | None = None
    model: str | None = None


class ModelCard(_Open):
    id: str
    object: str
    created: int
    owned_by: str


class ModelList(_Open):
    object: str
    data: list[ModelCard]


class Health(_Open):
    """Without a valid key (when keys are configured) only ``status`` and ``ok``; with one, the
    backends, admission and the original's state as well."""

    status: str
    ok: bool
    backends: dict[str, dict[str, Any]] | None = None
