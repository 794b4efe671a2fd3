"""Runtime preferences an operator changes while the gateway runs (from the dashboard): the
default model for placeholder requests and the swarm presets swarm-on-chat uses.

Held by the ``Gateway`` (``gateway.preferences``) so routing and swarm read the live values; kept
in memory only — the config file stays the source of truth across restarts.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator


class SwarmPreset(BaseModel):
    """A named swarm: its agents and how to judge them. The original's presets were bare lists of
    model specs; such a list is read as the preset's ``models``."""

    model_config = ConfigDict(extra="forbid")

    models: list[str] = Field(default_factory=list, max_length=16, description="Model specs of the agents.")
    strategy: str = Field(default="best-of-n", max_length=64)
    judge: str | None = Field(default=None, max_length=256)
    max_parallel: int | None = Field(default=None, ge=1, le=64)

    @model_validator(mode="before")
    @classmethod
    def _from_list(cls, data: Any) -> Any:
        return {"models": data} if isinstance(data, list) else data


class Preferences(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    default_model: str | None = Field(
        default=None, max_length=256, description="Model spec for auto/placeholder requests."
    )
    swarm_presets: dict[str, SwarmPreset] = Field(default_factory=dict, max_length=32)
    active_swarm_preset: str | None = Field(default=None, max_length=64)

    def active_swarm(self) -> SwarmPreset | None:
        """The preset swarm-on-chat uses when a request brings no ``swarm`` options."""
        if self.active_swarm_preset is None:
            return None
        return self.swarm_presets.get(self.active_swarm_preset)

    def original(self) -> dict[str, Any]:
        """The original's view: the default model and each preset as its list of model specs."""
        return {
            "default_model": self.default_model or None,
            "swarm_presets": {name: list(preset.models) for name, preset in self.swarm_presets.items()},
        }

    def merged(self, patch: dict[str, Any]) -> Preferences:
        """A validated copy with ``patch``'s keys replaced (raises pydantic's ValidationError)."""
        data = self.model_dump() | patch
        prefs = Preferences.model_validate(data)
        if prefs.active_swarm_preset is not None and prefs.active_swarm_preset not in prefs.swarm_presets:
            raise ValueError(f"active_swarm_preset {prefs.active_swarm_preset!r} is not one of the swarm_presets")
        return prefs
