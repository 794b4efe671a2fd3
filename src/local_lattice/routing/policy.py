"""The routing policy: everything the resolver needs from the configuration, built once at start-up.

``build_policy`` reads the role registry and the profiles file; a malformed one raises
``ConfigError`` naming the file, so the gateway refuses to start. Also the per-backend status the
gateway passes in when several backends serve the same id.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from local_lattice.config import Config
from local_lattice.routing.grammar import placeholders
from local_lattice.routing.profiles import ProfileBook, load_profiles
from local_lattice.routing.roles import Roles, load_roles


@dataclass(frozen=True, slots=True)
class RoutingPolicy:
    """The routing settings of a config in the form the resolver reads: roles, profiles, placeholders,
    the default model and what to do when a model is missing or not loaded."""

    roles: Roles = field(default_factory=Roles)
    profiles: ProfileBook = field(default_factory=ProfileBook)
    placeholders: frozenset[str] = field(default_factory=lambda: placeholders(None))
    default_model: str = ""
    on_model_miss: Literal["fallback", "error"] = "fallback"
    prefer_loaded: Literal["strict", "1", "0"] = "strict"
    force_default: bool = False
    long_prompt_chars: int = 48000
    max_candidates: int = 16


@dataclass(frozen=True, slots=True)
class BackendStatus:
    """What the gateway knows about one backend right now."""

    healthy: bool = True
    in_flight: int = 0
    order: int = 0
    cooling: bool = False


def build_policy(config: Config) -> RoutingPolicy:
    routing = config.routing
    return RoutingPolicy(
        roles=load_roles(config),
        profiles=load_profiles(config),
        placeholders=placeholders(routing.extra_placeholder_models),
        default_model=routing.default_model.strip(),
        on_model_miss=routing.on_model_miss,
        prefer_loaded=routing.prefer_loaded,
        force_default=routing.force_default_model,
        long_prompt_chars=routing.long_prompt_chars,
        max_candidates=max(16, routing.fallback_attempts),
    )
