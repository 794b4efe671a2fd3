"""``lattice pull`` / ``local-lattice-mlx download`` (no hub here: the offline path and the cache
layout) and ``local-lattice-mlx serve`` with grab mode and preloads, as real processes."""

from __future__ import annotations

import contextlib
import hashlib
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from local_lattice.engines.discovery import default_roots, discover
from tests.support.models import smollm2_path
from tests.support.procs import PYTHON, RunningProcess, free_port, run_process

pytestmark = pytest.mark.slow


def offline_env(home: Path) -> dict[str, str]:
    # A closed local port stands in for the hub: every request is refused at once.
    return {"HOME": str(home), "HF_HOME": str(home / "hf"), "HF_ENDPOINT": f"http://127.0.0.1:{free_port()}"}


def run(argv: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    import os

    return subprocess.run(argv, capture_output=True, text=True, env={**os.environ, **env}, timeout=120, check=False)


@pytest.mark.parametrize(
    "argv",
    [
        [PYTHON, "-m", "local_lattice", "pull", "mlx-community/SmolLM2-135M-Instruct-4bit"],
        [PYTHON, "-m", "local_lattice", "pull", "org/repo/model.Q4_K_M.gguf"],
        [PYTHON, "-c", "from local_lattice.cli_mlx import main; main()", "download", "org/repo"],
    ],
)
def test_pull_without_a_hub_fails_clearly(tmp_path: Path, argv: list[str]) -> None:
    result = run(argv, offline_env(tmp_path))
    assert result.returncode == 1
    assert "could not fetch" in result.stderr
    assert "Traceback" not in result.stderr


def test_pull_rejects_a_malformed_repo_id(tmp_path: Path) -> None:
    result = run([PYTHON, "-m", "local_lattice", "pull", "not-a-repo"], offline_env(tmp_path))
    assert result.returncode == 1
    assert "org/name" in result.stderr


def test_a_cached_gguf_is_found_offline_and_discovered_under_its_repo_id(tmp_path: Path) -> None:
    env = offline_env(tmp_path)
    repo = Path(env["HF_HOME"]) / "hub" / "models--acme--tiny-gguf"
    data = b"GGUF" + b"\x00" * 1000
    blob = repo / "blobs" / hashlib.sha256(data).hexdigest()
    blob.parent.mkdir(parents=True)
    blob.write_bytes(data)
    snapshot = repo / "snapshots" / ("a" * 40)
    snapshot.mkdir(parents=True)
    (snapshot / "tiny.Q4.gguf").symlink_to(blob)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("a" * 40)

    result = run([PYTHON, "-m", "local_lattice", "pull", "acme/tiny-gguf/tiny.Q4.gguf"], {**env, "HF_HUB_OFFLINE": "1"})

    assert result.returncode == 0, result.stderr
    assert Path(result.stdout.strip()) == snapshot / "tiny.Q4.gguf"
    found = {m.id: m for m in discover(default_roots(env))}
    assert found["acme/tiny-gguf"].path == snapshot / "tiny.Q4.gguf"
    assert found["acme/tiny-gguf"].size_bytes == len(data)


@contextlib.contextmanager
def mlx_cli_serve(home: Path, *args: str) -> Iterator[RunningProcess]:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    argv = [PYTHON, "-c", "from local_lattice.cli_mlx import main; main()", "serve", "--port", str(port), *args]
    env = {"HOME": str(home), "LATTICE_CONFIG": "", "LM_STUDIO_URL": "", "MIDDLE_LAYER_API_KEY": ""}
    with run_process(argv, ready_url=base + "/healthz", base_url=base, env=env, timeout=120) as proc:
        yield proc


def test_grab_mode_serves_one_model_for_any_name(tmp_path: Path) -> None:
    with mlx_cli_serve(tmp_path, "--grab", str(smollm2_path())) as gateway:
        models = httpx.get(gateway.url + "/v1/models").json()["data"]
        answer = httpx.post(
            gateway.url + "/v1/chat/completions",
            json={"model": "gpt-4o", "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 4},
            timeout=120,
        )
    assert [(m["id"], m["owned_by"]) for m in models] == [("mlx", "mlx-grab")]  # the original's grab mode
    assert answer.status_code == 200
    assert answer.headers["x-model-routed-to"] == "mlx-grab/mlx"


def test_model_root_and_preload_load_before_serving(tmp_path: Path) -> None:
    root = tmp_path / "models"
    root.mkdir()
    (root / "MyModel.gguf").symlink_to(smollm2_path())
    with mlx_cli_serve(tmp_path, "--model-root", str(root), "--preload", "mymodel,absent") as gateway:
        health = httpx.get(gateway.url + "/healthz").json()
    assert "mymodel" in health["backends"]["llamacpp"]["loaded"]
    log = gateway.log()
    assert "preloaded llamacpp/mymodel (self-test passed)" in log
    assert "loading llamacpp/mymodel" in log  # the progress shown while it loads
    assert re.search(r"loaded llamacpp/mymodel in \d+\.\d+ s", log)
