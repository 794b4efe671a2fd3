"""``lattice doctor``: check what a start needs — a valid config, a safe bind, a free port, reachable
backends, models to serve, roles that resolve, the in-process engines — and say for each problem how
to fix it. The backends are those ``lattice serve`` would serve (``routing.serving``: the embedded
default and discovered servers when nothing is configured). Checks over the config plus short
network probes; nothing is started and no model is loaded."""

from __future__ import annotations

import asyncio
import importlib
import socket
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from rich.table import Table
from rich.text import Text

from local_lattice.config import IN_PROCESS_TYPES, BackendConfig, Config, ConfigError, check_bind, load
from local_lattice.console.client import GatewayClient, GatewayUnreachable
from local_lattice.errors import LatticeError
from local_lattice.routing.policy import RoutingPolicy, build_policy
from local_lattice.routing.resolver import resolve
from local_lattice.routing.serving import served
from local_lattice.types import ModelInfo

Level = Literal["ok", "warn", "fail"]
PROBE_TIMEOUT = 5.0
ENGINES = (("llama_cpp", "llamacpp", "GGUF models in-process"), ("mlx_lm", "mlx", "MLX models in-process"))
ENGINE_NAMES = {"llamacpp": "llama.cpp", "mlx": "MLX"}


@dataclass(frozen=True, slots=True)
class Finding:
    """One result of ``lattice doctor``: the check, how bad it is, what was found and how to fix it."""

    check: str
    level: Level
    detail: str
    fix: str = ""


def load_checked(path: Path | None, env: Mapping[str, str]) -> tuple[Config | None, list[Finding]]:
    """The config and findings about it; ``None`` when it cannot be used at all."""
    try:
        config = load(path, env)
    except ConfigError as exc:
        fix = "correct the key named above (every key: docs/configuration.md)"
        return None, [Finding("config", "fail", str(exc), fix)]
    findings = [Finding("config", "ok", f"{path or 'defaults and environment'} is valid")]
    try:
        check_bind(config.server)
        keys = len(config.server.named_keys())
        auth = f"{keys} API key(s)" if keys else "no API key (loopback only)"
        findings.append(Finding("bind", "ok", f"{config.server.host}:{config.server.port}, {auth}"))
    except ConfigError as exc:
        findings.append(Finding("bind", "fail", str(exc), "set MIDDLE_LAYER_API_KEY or bind 127.0.0.1"))
    try:
        build_policy(config)
    except ConfigError as exc:
        findings.append(Finding("roles/profiles", "fail", str(exc), "fix the file named above"))
    return config, findings


async def check_port(host: str, port: int) -> Finding:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as sock:
        try:
            sock.bind((host, port))
            return Finding("port", "ok", f"{host}:{port} is free")
        except OSError as exc:
            reason = exc.strerror or str(exc)
    url = f"http://{host}:{port}"
    try:
        async with GatewayClient(url, timeout=PROBE_TIMEOUT) as client:
            health = await client.get("/healthz")
        if isinstance(health.body, dict) and {"status", "ok"} <= health.body.keys():
            return Finding("port", "warn", f"a Local Lattice gateway already runs at {url}", f"lattice ps --url {url}")
    except GatewayUnreachable:
        pass
    return Finding("port", "fail", f"cannot listen on {host}:{port}: {reason}", "pass --port N (or set PORT)")


def _where(settings: BackendConfig) -> str:
    if settings.type in IN_PROCESS_TYPES:
        return f"in-process {ENGINE_NAMES[settings.type]}"
    return settings.url or "the public API"


async def check_backends(config: Config) -> tuple[list[Finding], list[ModelInfo], Config]:
    """Each backend a server started from ``config`` would serve (the embedded and discovered ones
    too), whether it answers, and the models it lists; also the serving config itself."""
    try:
        async with asyncio.timeout(PROBE_TIMEOUT * 2), served(config) as found:
            serving, snapshot = found.config, found.snapshot
    except TimeoutError:
        fix = "check that every backend's url answers quickly (lattice ps for a running gateway)"
        return [Finding("backends", "fail", f"no answer within {PROBE_TIMEOUT * 2:.0f} s", fix)], [], config
    if not serving.backends:
        fix = "add a [[backends]] table (lattice.example.toml), set LM_STUDIO_URL, or pip install 'local-lattice[demo]'"
        return [Finding("backends", "fail", "no backends configured or found", fix)], [], serving
    findings = []
    for settings in serving.backends:
        name, where = settings.name, _where(settings)
        error = snapshot.errors.get(name)
        if error is None:
            count = sum(1 for m in snapshot.models if m.backend == name)
            findings.append(Finding(f"backend {name}", "ok", f"{where}: {count} models"))
        else:
            fix = f"start the server at {where}, or correct backends.{name}.url / its api_key"
            findings.append(Finding(f"backend {name}", "fail", f"{where}: {error}", fix))
    return findings, list(snapshot.models), serving


def check_models(config: Config, models: list[ModelInfo]) -> list[Finding]:
    if not config.backends:
        return []
    chat = [m for m in models if m.kind == "chat"]
    embedding = len(models) - len(chat)
    if not chat:
        fix = "load or pull a model on a backend (lattice models lists what each backend reports)"
        return [Finding("models", "fail", "no chat model is available on any backend", fix)]
    findings = [Finding("models", "ok", f"{len(chat)} chat and {embedding} embedding models")]
    try:
        policy = build_policy(config)
    except ConfigError:
        return findings  # already reported by load_checked
    return findings + check_roles(policy, chat)


def check_roles(policy: RoutingPolicy, chat: list[ModelInfo]) -> list[Finding]:
    """Where each role resolves. A role that matches nothing is a warning, unless misses fall back
    (ON_MODEL_MISS=fallback, the default): then requests for it are still served, and it says by what."""
    strict = RoutingPolicy(roles=policy.roles, profiles=policy.profiles, on_model_miss="error")
    findings = []
    for role, specs in sorted(policy.roles.table.items()):
        if not specs:
            continue
        try:
            chosen = resolve(f"role:{role}", chat, policy=strict).chosen
            findings.append(Finding(f"role:{role}", "ok", f"→ {chosen.backend}/{chosen.id}"))
            continue
        except LatticeError:
            pass
        unmatched = f"matches no available model ({', '.join(specs)})"
        fix = f"add a model id for {role!r} under [roles] (or MODEL_ROLES_FILE)"
        if policy.on_model_miss == "fallback":
            chosen = resolve(f"role:{role}", chat, policy=policy).chosen
            detail = f"{unmatched}; served by {chosen.backend}/{chosen.id} (ON_MODEL_MISS=fallback)"
            findings.append(Finding(f"role:{role}", "ok", detail, fix))
        else:
            findings.append(Finding(f"role:{role}", "warn", unmatched, fix))
    return findings


def check_engines() -> list[Finding]:
    findings = []
    for module, extra, purpose in ENGINES:
        try:
            importlib.import_module(module)
            findings.append(Finding(f"engine {module}", "ok", f"importable ({purpose})"))
        except ModuleNotFoundError:
            findings.append(
                Finding(f"engine {module}", "warn", "not installed", f"pip install 'local-lattice[{extra}]'")
            )
        except Exception as exc:  # a broken native build shows up here, whatever it raises
            fix = f"reinstall: pip install --force-reinstall 'local-lattice[{extra}]'"
            findings.append(Finding(f"engine {module}", "fail", f"installed but fails to import: {exc}", fix))
    return findings


async def diagnose(path: Path | None, env: Mapping[str, str], port: int | None = None) -> list[Finding]:
    config, findings = load_checked(path, env)
    if config is not None:
        if port is not None:
            config.server.port = port
        findings.append(await check_port(config.server.host, config.server.port))
        backend_findings, models, serving = await check_backends(config)
        findings += backend_findings + check_models(serving, models)
    return findings + check_engines()


def report(findings: list[Finding]) -> tuple[int, Table]:
    """(exit code: 1 when anything failed, the table)."""
    styles = {"ok": "green", "warn": "yellow", "fail": "bold red"}
    table = Table(title="lattice doctor", title_justify="left", show_lines=False)
    for column in ("check", "result", "detail", "how to fix"):
        table.add_column(column, overflow="fold")
    for finding in findings:
        # Text, not markup: details and fixes name things like [[backends]] and local-lattice[mlx].
        level = Text(finding.level.upper(), style=styles[finding.level])
        table.add_row(Text(finding.check), level, Text(finding.detail), Text(finding.fix))
    return (1 if any(f.level == "fail" for f in findings) else 0), table
