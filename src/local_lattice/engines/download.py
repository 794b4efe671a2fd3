"""Fetching a model from the Hugging Face hub into its cache (``lattice pull``,
``local-lattice-mlx download``), where discovery then finds it as ``org/name``; and the folder grab
mode serves (``grab_folder``: a local path, or ``hf:org/name`` fetched once into ``MLX_GRAB_CACHE``).

``REPO`` alone fetches an MLX model folder; ``REPO/FILE.gguf`` (or ``--file``) fetches one GGUF.
The hub client shows its own progress bars. Every failure becomes a ``DownloadError`` with a
sentence a person can act on; this module never exits the process.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# Files an MLX folder needs; weights are safetensors, the rest is config and tokenizer.
MLX_PATTERNS = ["*.json", "*.safetensors", "*.model", "*.txt", "*.tiktoken", "*.jinja", "*.py"]


_REPO_ID = re.compile(r"[\w.-]+/[\w.-]+")


class DownloadError(Exception):
    """A model could not be fetched; the message says why and what to try."""


@dataclass(frozen=True)
class PullTarget:
    repo: str
    filename: str | None


def parse_target(spec: str, filename: str | None = None) -> PullTarget:
    """``org/name`` or ``org/name/file.gguf`` (or ``org/name`` with ``filename``)."""
    parts = [p for p in spec.strip().strip("/").split("/") if p]
    if len(parts) >= 3 and parts[-1].lower().endswith(".gguf") and filename is None:
        return PullTarget("/".join(parts[:2]), "/".join(parts[2:]))
    if len(parts) != 2:
        raise DownloadError(f"{spec!r} is not a Hugging Face repo id (expected org/name or org/name/file.gguf)")
    return PullTarget("/".join(parts), filename)


def _explain(target: PullTarget, exc: Exception) -> str:
    from huggingface_hub import errors

    name = target.repo + (f"/{target.filename}" if target.filename else "")
    if isinstance(exc, errors.RepositoryNotFoundError):
        return f"{target.repo} was not found on the hub (or it is private: set HF_TOKEN)"
    if isinstance(exc, errors.GatedRepoError):
        return f"{target.repo} is gated: accept its terms on the hub and set HF_TOKEN"
    if isinstance(exc, errors.LocalEntryNotFoundError):
        return (
            f"could not fetch {name}: the Hugging Face hub is unreachable and the model is not in the cache "
            "(check the network, HF_ENDPOINT, or unset HF_HUB_OFFLINE)"
        )
    if isinstance(exc, errors.EntryNotFoundError):
        return f"{name} does not exist in the repo"
    return f"could not fetch {name}: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}".rstrip(": ")


def pull(target: PullTarget, *, cache_dir: str | None = None) -> str:
    """Download ``target`` into the hub cache and return its local path (a file or a folder)."""
    try:
        import huggingface_hub
    except ImportError:
        raise DownloadError("pulling models needs huggingface-hub: pip install 'local-lattice[mlx]'") from None
    kwargs: dict[str, Any] = {"cache_dir": cache_dir}
    try:
        if target.filename is not None:
            return str(huggingface_hub.hf_hub_download(target.repo, target.filename, **kwargs))
        return str(huggingface_hub.snapshot_download(target.repo, allow_patterns=MLX_PATTERNS, **kwargs))
    except (OSError, ValueError, huggingface_hub.errors.HfHubHTTPError) as exc:
        raise DownloadError(_explain(target, exc)) from None
    except Exception as exc:  # the hub client's network stack raises its own types; none may escape as a traceback
        raise DownloadError(_explain(target, exc)) from None


def grab_folder(spec: str, cache: str) -> str:
    """The local file or folder grab mode serves for ``spec``.

    A path that exists is served as it is. ``hf:org/name`` (or ``org/name`` that is no local path)
    is fetched from the hub into ``cache``/``org__name`` the first time; a folder already there with
    its ``config.json`` is served without asking the hub again."""
    text = spec.strip()
    repo = text[3:].strip() if text.lower().startswith("hf:") else None
    if repo is None:
        path = Path(text).expanduser()
        if path.exists():
            return str(path)
        repo = text
    if not _REPO_ID.fullmatch(repo):
        raise DownloadError(
            f"{spec!r} is neither a local model (a GGUF file or an MLX folder) nor a Hugging Face repo id "
            "like hf:mlx-community/Qwen3-8B-4bit"
        )
    dest = Path(cache).expanduser() / repo.replace("/", "__")
    if not (dest / "config.json").is_file():
        _snapshot_into(PullTarget(repo, None), dest)
        if not (dest / "config.json").is_file():
            raise DownloadError(f"{repo} was fetched to {dest}, but it holds no config.json: it is not an MLX model")
    return str(dest)


def _snapshot_into(target: PullTarget, dest: Path) -> None:
    try:
        import huggingface_hub
    except ImportError:
        raise DownloadError("grabbing from the hub needs huggingface-hub: pip install 'local-lattice[mlx]'") from None
    try:
        huggingface_hub.snapshot_download(target.repo, local_dir=str(dest), allow_patterns=MLX_PATTERNS)
    except Exception as exc:  # the hub client's errors (and its network stack's) all become one sentence
        raise DownloadError(f"{_explain(target, exc)}; partial files may remain in {dest}") from None
