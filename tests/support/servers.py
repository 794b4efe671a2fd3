"""Start the real gateway and real upstreams (llama.cpp's OpenAI-compatible server) as processes."""

from __future__ import annotations

import contextlib
import sys
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

from tests.support.models import SMOLLM2_ID, smollm2_path
from tests.support.procs import PYTHON, RunningProcess, free_port, run_process


@contextlib.contextmanager
def llama_server(
    model: Path | None = None,
    alias: str = SMOLLM2_ID,
    n_ctx: int = 2048,
    n_threads: int = 2,
    extra_args: Sequence[str] = (),
) -> Iterator[RunningProcess]:
    """llama-cpp-python's OpenAI-compatible server with a real model; ``url`` is its ``/v1`` base."""
    port = free_port()
    argv = [
        PYTHON, "-m", "llama_cpp.server",
        "--model", str(model or smollm2_path()),
        "--model_alias", alias,
        "--host", "127.0.0.1",
        "--port", str(port),
        "--n_ctx", str(n_ctx),
        "--n_threads", str(n_threads),
        "--verbose", "False",
        *extra_args,
    ]  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    with run_process(argv, ready_url=base + "/v1/models", base_url=base + "/v1", timeout=120) as proc:
        yield proc


def backends_toml(backends: Sequence[tuple[str, str]], api_key: str | None = None, extra: str = "") -> str:
    """A config with one ``openai`` backend per ``(name, url)`` pair and, optionally, one API key."""
    lines = ["[server]"]
    if api_key is not None:
        lines.append(f'api_keys = ["{api_key}"]')
    for name, url in backends:
        lines += ["", "[[backends]]", f'name = "{name}"', 'type = "openai"', f'url = "{url}"']
    return "\n".join(lines) + "\n" + extra


@contextlib.contextmanager
def embedding_server(alias: str = "smollm2-embed") -> Iterator[RunningProcess]:
    """The same real model serving ``/v1/embeddings``, mean-pooled (llama.cpp's GGUF key override) so
    each input gets one vector; ``alias`` contains "embed", so the gateway lists it as an embedding model."""
    with llama_server(
        alias=alias, n_ctx=512, extra_args=("--embedding", "true", "--kv_overrides", "llama.pooling_type=int:1")
    ) as server:
        yield server


@contextlib.contextmanager
def gateway_process(
    config_toml: str, env: Mapping[str, str] | None = None, extra_args: tuple[str, ...] = ()
) -> Iterator[RunningProcess]:
    """The real gateway (``lattice serve``) on a free port with ``config_toml``; ``url`` is its root."""
    port = free_port()
    with tempfile.NamedTemporaryFile("w", suffix=".toml", delete=False) as handle:
        handle.write(config_toml)
    argv = [PYTHON, "-m", "local_lattice", "serve", "--config", handle.name, "--port", str(port), *extra_args]
    base = f"http://127.0.0.1:{port}"
    # No probing of the usual local ports unless a test asks: tests stay hermetic.
    clean_env = {"MIDDLE_LAYER_API_KEY": "", "LATTICE_CONFIG": "", "LATTICE_DISCOVER_SERVERS": "", **(env or {})}
    # /openapi.json answers as soon as the app is up, whatever state the upstreams are in.
    with run_process(argv, ready_url=base + "/openapi.json", base_url=base, env=clean_env, timeout=60) as proc:
        yield proc
    Path(handle.name).unlink(missing_ok=True)


LATTICE = str(Path(sys.executable).parent / "lattice")  # the venv's console script, as the README runs it


def clean_machine_env(home: Path, **extra: str) -> dict[str, str]:
    """The environment of a user's clean machine: an empty HOME and data dir (no model folders, no
    ledger of earlier runs), no config, no key, and the local-server probe pointed at a port where
    nothing listens (so it runs, finds nothing, and no server another test started leaks in)."""
    for folder in ("home", "data", "cache"):
        (home / folder).mkdir(parents=True, exist_ok=True)
    return {
        "HOME": str(home / "home"),
        "XDG_DATA_HOME": str(home / "data"),
        "XDG_CACHE_HOME": str(home / "cache"),
        "LATTICE_DISCOVER_SERVERS": f"openai=http://127.0.0.1:{free_port()}/v1",
        **extra,
    }


@contextlib.contextmanager
def default_gateway(home: Path, **extra_env: str) -> Iterator[RunningProcess]:
    """``lattice serve`` exactly as the README runs it — no config, no flags — on a clean machine
    (``clean_machine_env``; the port comes from ``PORT``): the embedded SmolLM2 in-process."""
    port = free_port()
    env = clean_machine_env(home, PORT=str(port), **extra_env)
    base = f"http://127.0.0.1:{port}"
    with run_process([LATTICE, "serve"], ready_url=base + "/healthz", base_url=base, env=env, inherit_env=False,
                     timeout=120) as proc:  # fmt: skip
        yield proc
