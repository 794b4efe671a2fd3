"""The ``[state]`` section: a shared store (Redis or Valkey) for limits across gateway replicas."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator


class StateConfig(BaseModel):
    """A shared store (Redis or Valkey) that several gateway replicas keep their limits in."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    url: str | None = Field(
        None,
        description="redis://host:port/db (also rediss://, unix://): per-key and per-IP requests and tokens per "
        "minute, and the concurrency caps of upstream servers, are then counted across every replica on this URL. "
        "Unset: each process counts its own.",
    )
    timeout_ms: float = Field(
        50.0, gt=0, description="A store call slower than this counts as the store lost: limits turn local."
    )

    lease_seconds: float = Field(
        5.0,
        ge=0.5,
        le=300,
        description="How long a shared concurrency slot outlives a replica that stopped renewing it (died).",
    )

    @field_validator("url")
    @classmethod
    def _scheme(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("must start with redis://, rediss:// or unix://")
        return value
