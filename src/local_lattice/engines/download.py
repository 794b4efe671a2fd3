"""Fetching a model from the Hugging Face hub into its cache (``lattice pull``,
``local-lattice-mlx download``), where discovery then finds it as ``org/name``.

``REPO`` alone fetches an MLX model folder; ``REPO/FILE.gguf`` (or ``--file``) fetches one GGUF.
The hub client shows its own progress bars. Every failure becomes a ``DownloadError`` with a
sentence a person can act on; this module never exits the process.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# Files an MLX folder needs; weights are safetensors, the rest is config and tokenizer.
MLX_PATTERNS = ["*.json", "*.safetensors", "*.model", "*.txt", "*.tiktoken", "*.jinja", "*.py"]


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
