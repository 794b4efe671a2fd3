"""``lattice init``: find the models on this machine, infer roles from their ids, write a role registry.

Starts from the inventory the server would have (``routing.serving``: the configured backends, or
the embedded default model, the usual model folders and the local servers that answer), then probes
the usual local servers (LM Studio :1234, Ollama :11434, llama.cpp :8080, vLLM :8000) through the
real backend classes and scans the folders it is given (MLX directories with ``config.json``,
``.gguf`` files). Roles are inferred from ids: coder, vision,
fast (small sizes), reasoner (≥ 70B or reasoning words), else default; embedding models are never
given a role and loaded models are listed first. Writes the original's JSON or a TOML ``[roles]``.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from local_lattice.config import IN_PROCESS_TYPES, BackendConfig, Config
from local_lattice.routing.discovery import Probe, probe_server, server_config
from local_lattice.routing.sizes import parameter_counts
from local_lattice.types import ModelInfo

ROLE_NAMES = ("fast", "coder", "reasoner", "vision", "default")
InitBackend = Literal["auto", "lmstudio", "ollama", "openai", "mlx"]
LOCAL_SERVERS: tuple[tuple[str, str, str], ...] = (
    ("lmstudio", "lmstudio", "http://127.0.0.1:1234/v1"),
    ("ollama", "ollama", "http://127.0.0.1:11434"),
    ("llamacpp", "openai", "http://127.0.0.1:8080/v1"),
    ("vllm", "openai", "http://127.0.0.1:8000/v1"),
)

_EMBEDDING = re.compile(r"(^|[/_.:-])(embed|embedding|embeddings|nomic-embed|bge|e5|gte|minilm)([/_.:-]|$)")
_CODER = re.compile(r"coder|code-instruct|codellama|codestral|codegemma")
_VISION = re.compile(r"(^|[/_.:-])vl([/_.:-]|$)|vision|llava|pixtral|gemma-4")
_FAST_WORDS = re.compile(r"mini|small|tiny|phi-|optiq")
_REASONER_WORDS = re.compile(r"reason|thinking|(^|[/_.:-])r1([/_.:-]|$)|nemotron|hermes-4|opus|deckard")


def infer_roles(model: ModelInfo) -> set[str]:
    text = model.id.lower()
    if model.kind == "embedding" or _EMBEDDING.search(text):
        return set()
    roles: set[str] = set()
    sizes = parameter_counts(text)
    if _CODER.search(text):
        roles.add("coder")
    if _VISION.search(text):
        roles.add("vision")
    if _FAST_WORDS.search(text) or (sizes and max(sizes) < 10):
        roles.add("fast")
    if _REASONER_WORDS.search(text) or (sizes and max(sizes) >= 70):
        roles.add("reasoner")
    return roles or {"default"}


def classify(models: Sequence[ModelInfo]) -> dict[str, list[str]]:
    """Role → ids: loaded ids first (in the order found), then the rest alphabetically."""
    chat = [m for m in models if infer_roles(m)]
    loaded = list(dict.fromkeys(m.id for m in chat if m.loaded))
    buckets: dict[str, list[str]] = {name: [] for name in ROLE_NAMES}
    for model in chat:
        for role in infer_roles(model):
            if model.id not in buckets[role]:
                buckets[role].append(model.id)

    def ordered(ids: Iterable[str]) -> list[str]:
        ids = list(ids)
        rest = sorted((i for i in ids if i not in loaded), key=str.lower)
        return [i for i in loaded if i in ids] + rest

    out = {role: ordered(ids) for role, ids in buckets.items() if ids}
    if "fast" in out:
        # Among fast models the smallest is the fastest; loaded ones still come first.
        rank = {m.id: min(parameter_counts(m.id) or [10.0]) for m in chat}
        out["fast"] = sorted(out["fast"], key=lambda i: (i not in loaded, rank.get(i, 10.0)))
    if "default" not in out and chat:
        out["default"] = ordered(list(dict.fromkeys(m.id for m in chat))[:3])
    return out


def scan_folder(root: Path) -> Probe:
    """MLX model directories (``config.json``, one or two levels down) and ``.gguf`` files."""
    if not root.is_dir():
        return Probe(str(root), error="not a directory")
    ids: list[str] = []
    for path in sorted(root.rglob("*")):
        depth = len(path.relative_to(root).parts)
        if path.name == "config.json" and depth <= 3:
            ids.append(str(path.parent.relative_to(root)))
        elif path.suffix == ".gguf" and depth <= 3:
            ids.append(path.stem)
    return Probe(str(root), [ModelInfo(id=i, backend="folder", loaded=False) for i in dict.fromkeys(ids)])


def servers_to_probe(backend: InitBackend, lmstudio_url: str | None, urls: Sequence[str]) -> list[BackendConfig]:
    """The servers init probes besides the server's own backends: ``--url``s and the usual local ones."""
    wanted: list[BackendConfig] = [server_config(f"url{i + 1}", "openai", url) for i, url in enumerate(urls)]
    for name, kind, url in LOCAL_SERVERS:
        if kind == "lmstudio" and lmstudio_url:
            url = lmstudio_url.rstrip("/") + ("" if lmstudio_url.rstrip("/").endswith("/v1") else "/v1")
        if backend in ("auto", kind) and all(b.url.rstrip("/") != url for b in wanted):
            wanted.append(server_config(name, kind, url))
    return wanted


def _selected(backend: InitBackend, settings: BackendConfig) -> bool:
    if settings.type == "anthropic":
        return False  # a cloud's models are not this machine's
    if backend == "mlx":
        return settings.type in IN_PROCESS_TYPES
    return backend in ("auto", settings.type)


def _source(settings: BackendConfig) -> str:
    return f"{settings.name} ({settings.url or 'in-process ' + settings.type})"


async def probe_all(
    config: Config,
    backend: InitBackend = "auto",
    *,
    lmstudio_url: str | None = None,
    model_roots: Sequence[Path] = (),
    urls: Sequence[str] = (),
) -> list[Probe]:
    """What the server would serve (``routing.serving``: the configured backends, or the embedded
    default, the usual model folders and the local servers that answer), then what only init is
    asked about: ``--url``s, the usual local servers the server does not use, ``--model-root``s."""
    from local_lattice.routing.serving import served

    async with served(config) as found:
        snapshot = found.snapshot
        own = [b for b in found.config.backends if _selected(backend, b)]
        probes = [
            Probe(_source(b), [m for m in snapshot.models if m.backend == b.name], snapshot.errors.get(b.name))
            for b in own
        ]
    known = {b.url.rstrip("/") for b in found.config.backends if b.url}
    extra = [s for s in servers_to_probe(backend, lmstudio_url, urls) if s.url.rstrip("/") not in known]
    probes += await asyncio.gather(*(probe_server(s) for s in extra))
    if backend in ("auto", "mlx"):
        probes += [scan_folder(root.expanduser()) for root in model_roots]
    return probes


def roles_document(roles: dict[str, list[str]], probes: Sequence[Probe]) -> dict[str, object]:
    found = [p for p in probes if p.models]
    models = [m for p in found for m in p.models]
    chat = {m.id for m in models if infer_roles(m)}
    loaded = {m.id for m in models if m.loaded and m.id in chat}
    stamp = datetime.now(UTC).strftime("%Y-%m-%d")
    comment = (
        f"Generated by lattice init on {stamp} from {', '.join(p.source for p in found)}: "
        f"{len(chat)} chat model(s), {len(loaded)} loaded. Each role lists ids in preference order; "
        "the first one available wins. Re-run after changing which models are installed or loaded."
    )
    return {"_comment": comment, **roles}


def render(document: dict[str, object], fmt: Literal["json", "toml"]) -> str:
    if fmt == "json":
        return json.dumps(document, indent=2, ensure_ascii=False) + "\n"
    lines = [f"# {document.get('_comment', '')}", "[roles]"]
    for key, value in document.items():
        if not key.startswith("_") and isinstance(value, list):
            # JSON string syntax is valid TOML basic-string syntax.
            lines.append(f"{json.dumps(key)} = [{', '.join(json.dumps(v) for v in value)}]")
    return "\n".join(lines) + "\n"


def default_output(probes: Sequence[Probe]) -> Path:
    sources = {p.source.split(" ")[0] for p in probes if p.models}
    if sources == {"lmstudio"}:
        return Path("lmstudio_roles.json")
    if sources and all(Path(s).is_dir() for s in sources):
        return Path("mlx_roles.json")
    return Path("lattice_roles.json")


def run_init(
    config: Config,
    backend: InitBackend,
    *,
    output: Path | None,
    lmstudio_url: str | None,
    model_roots: Sequence[Path],
    urls: Sequence[str],
    force: bool,
    dry_run: bool,
) -> tuple[int, str]:
    """The whole command: probe, classify, write. Returns ``(exit code, text for the terminal)``."""
    probes = asyncio.run(probe_all(config, backend, lmstudio_url=lmstudio_url, model_roots=model_roots, urls=urls))
    roles = classify([m for p in probes for m in p.models])
    report = [f"  {p.source}: {len(p.models)} model(s)" if p.models else f"  {p.source}: {p.error}" for p in probes]
    if not roles:
        checklist = "Start LM Studio, Ollama, llama.cpp's server or vLLM with a chat model, or pass --model-root."
        return 1, "lattice init: no chat models found.\n" + "\n".join(report) + f"\n{checklist}\n"
    fmt: Literal["json", "toml"] = "toml" if output is not None and output.suffix == ".toml" else "json"
    text = render(roles_document(roles, probes), fmt)
    if dry_run:
        return 0, text
    path = output or default_output(probes)
    if path.exists() and not force:
        return 1, f"lattice init: {path} already exists (pass --force to overwrite)\n"
    path.write_text(text, encoding="utf-8")
    use = f"MODEL_ROLES_FILE={path.resolve()}" if fmt == "json" else f"merge {path} into your config"
    summary = "\n".join(f"  role:{name} -> {', '.join(ids)}" for name, ids in roles.items())
    return 0, "Probed:\n" + "\n".join(report) + f"\nWrote {path}:\n{summary}\nUse it: {use}\n"
