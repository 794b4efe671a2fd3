"""Finding local models on disk: GGUF files and MLX model folders, with stable readable ids.

Owns the list of search roots and the id rules; it only reads directory listings and file sizes
(never opens a model). Ids are lower-case: ``publisher/model`` for a folder under a root
(LM Studio's layout, the Hugging Face cache's ``models--org--name``), the file stem otherwise.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

ModelFormat = Literal["gguf", "mlx"]

_SPLIT = re.compile(r"-(\d{5})-of-(\d{5})$")
_HF_REPO = re.compile(r"^models--(.+)$")
_MAX_DEPTH = 6


@dataclass(frozen=True, slots=True)
class LocalModel:
    """One model found on disk: what to load, in which format, and how big it is."""

    id: str
    path: Path
    format: ModelFormat
    size_bytes: int


def default_roots(env: Mapping[str, str], model_root: str | None = None) -> list[Path]:
    """Where models live, in the order that wins on an id clash."""
    home = Path(env.get("HOME") or Path.home())
    hf_home = env.get("HF_HOME")
    hf_hub = env.get("HF_HUB_CACHE") or (str(Path(hf_home) / "hub") if hf_home else None)
    roots = [
        Path(model_root) if model_root else None,
        home / ".lmstudio" / "models",
        home / ".cache" / "lm-studio" / "models",
        home / ".cache" / "mlx-models",
        Path(hf_hub) if hf_hub else home / ".cache" / "huggingface" / "hub",
    ]
    return [root.expanduser() for root in roots if root is not None]


def is_mlx_folder(path: Path) -> bool:
    try:
        names = {p.name for p in path.iterdir()}
    except OSError:
        return False
    has_weights = any(n.endswith(".safetensors") for n in names)
    return "config.json" in names and has_weights and ("tokenizer.json" in names or "tokenizer_config.json" in names)


def _size(paths: Iterable[Path]) -> int:
    total = 0
    for path in paths:
        try:
            total += path.stat().st_size
        except OSError:
            continue
    return total


def _gguf_parts(path: Path) -> list[Path] | None:
    """All files of a (possibly split) GGUF, or None for a file that is not a model's first part."""
    name = path.name.lower()
    if not name.endswith(".gguf") or name.startswith("mmproj"):
        return None
    match = _SPLIT.search(path.stem)
    if match is None:
        return [path]
    if match.group(1) != "00001":
        return None
    prefix = path.stem[: match.start()]
    return sorted(path.parent.glob(f"{prefix}-*-of-{match.group(2)}.gguf"))


def _walk(root: Path) -> Iterator[tuple[Path, list[str], list[str]]]:
    base_depth = len(root.parts)
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        here = Path(dirpath)
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".") and d not in ("blobs", "refs"))
        if len(here.parts) - base_depth >= _MAX_DEPTH:
            dirnames[:] = []
        yield here, dirnames, sorted(filenames)


def _label(root: Path, folder: Path) -> str:
    """The readable part of a folder's id: ``org/name`` in the HF cache, the relative path elsewhere."""
    rel = folder.relative_to(root).parts
    for i, part in enumerate(rel):
        match = _HF_REPO.match(part)
        if match:
            return match.group(1).replace("--", "/", 1)
        if part == "snapshots" and i > 0:
            break
    return "/".join(rel)


def scan_root(root: Path) -> Iterator[LocalModel]:
    """Models under one root (files or folders); a missing root yields nothing."""
    if root.is_file():
        parts = _gguf_parts(root)
        if parts:
            yield LocalModel(_SPLIT.sub("", root.stem).lower(), root, "gguf", _size(parts))
        return
    if not root.is_dir():
        return
    if is_mlx_folder(root):
        yield LocalModel(root.name.lower(), root, "mlx", _size(root.glob("*.safetensors")))
        return
    for folder, dirnames, filenames in _walk(root):
        label = _label(root, folder) if folder != root else ""
        if folder != root and is_mlx_folder(folder):
            yield LocalModel(label.lower(), folder, "mlx", _size(folder.glob("*.safetensors")))
            dirnames[:] = []
            continue
        firsts = [(folder / f, parts) for f in filenames if (parts := _gguf_parts(folder / f))]
        for path, parts in firsts:
            stem = _SPLIT.sub("", path.stem)
            alone = bool(label) and len(firsts) == 1  # one GGUF in its folder: the folder names it
            model_id = label if alone else "/".join(part for part in (label, stem) if part)
            yield LocalModel(model_id.lower(), path, "gguf", _size(parts))


def discover(roots: Sequence[Path], named: Mapping[str, str] | None = None) -> list[LocalModel]:
    """Every model under ``roots`` plus the ``named`` ones (id -> path, which win). First id wins."""
    found: dict[str, LocalModel] = {}
    for model_id, raw in (named or {}).items():
        path = Path(raw).expanduser()
        for model in scan_root(path):
            found.setdefault(model_id, LocalModel(model_id, model.path, model.format, model.size_bytes))
            break
        else:
            # Keep a named model even when missing so a request gets a clear load error, not a 404.
            fmt: ModelFormat = "gguf" if path.suffix.lower() == ".gguf" else "mlx"
            found.setdefault(model_id, LocalModel(model_id, path, fmt, 0))
    for root in roots:
        for model in scan_root(root):
            found.setdefault(model.id, model)
    return list(found.values())
