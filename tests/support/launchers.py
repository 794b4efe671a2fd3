"""The original's launchers as real processes: ``local-lattice-lmstudio`` (and its alias) over an LM
Studio, ``local-lattice-mlx`` over model folders, ``scripts/start.sh``. Each starts on a free port in a
working folder the test chooses (where the original's roles files are looked for), with a clean
environment: no config file, no probing of the usual local ports, the given variables only."""

from __future__ import annotations

import contextlib
import shutil
import sys
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import httpx

from tests.support.procs import RunningProcess, free_port, run_process

ROOT = Path(__file__).resolve().parents[2]
KEY = "original-users-key"
AUTH = {"X-API-Key": KEY}
# Everything the surrounding environment could set for the gateway is cleared unless a test sets it.
_CLEAN = {
    "LATTICE_CONFIG": "",
    "LATTICE_DISCOVER_SERVERS": "",
    "LATTICE_LEDGER_PATH": "off",
    "MLX_GRAB_MODEL": "",
    "DEFAULT_MODEL": "",
    "TOKENIZERS_PARALLELISM": "false",
}


def script(name: str) -> str:
    """A console script of this install (the venv's bin folder when it is not on PATH)."""
    return shutil.which(name) or str(Path(sys.executable).parent / name)


@contextlib.contextmanager
def launch(
    argv: Sequence[str], cwd: Path, env: Mapping[str, str] | None = None, timeout: float = 120.0
) -> Iterator[RunningProcess]:
    """``argv`` (a launcher; ``PORT`` picks its port) in ``cwd``; yields it once it answers."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    full = {**_CLEAN, "MIDDLE_LAYER_API_KEY": KEY, "HOME": str(cwd), "PORT": str(port), **(env or {})}
    with run_process(list(argv), ready_url=base + "/openapi.json", base_url=base, env=full, cwd=str(cwd),
                     timeout=timeout) as proc:  # fmt: skip
        yield proc


@contextlib.contextmanager
def lmstudio_launcher(
    lm_studio: str, cwd: Path, env: Mapping[str, str] | None = None, name: str = "local-lattice-lmstudio"
) -> Iterator[RunningProcess]:
    """The LM Studio launcher in front of the LM Studio at ``lm_studio`` (its root URL)."""
    with launch([script(name)], cwd, {"LM_STUDIO_URL": lm_studio, **(env or {})}) as proc:
        yield proc


@contextlib.contextmanager
def mlx_launcher(args: Sequence[str], cwd: Path, env: Mapping[str, str] | None = None) -> Iterator[RunningProcess]:
    """``local-lattice-mlx ARGS`` (no arguments: what the original did with none, serve)."""
    with launch([script("local-lattice-mlx"), *args], cwd, env) as proc:
        yield proc


def settled(gateway: RunningProcess, timeout: float = 10.0) -> dict[str, object]:
    """The admission state once nothing is in flight or waiting (fails if that never comes)."""
    import time

    deadline = time.monotonic() + timeout
    while True:
        admission = httpx.get(gateway.url + "/healthz", headers=AUTH).json()["admission"]
        if (admission["inflight"], admission["waiting"]) == (0, 0) or time.monotonic() > deadline:
            assert (admission["inflight"], admission["waiting"]) == (0, 0), admission
            return dict(admission)
        time.sleep(0.05)
