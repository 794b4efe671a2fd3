"""The documentation tells the truth: every fenced block in the README, ``llms.txt`` and ``docs/`` is
executed — Python against a live gateway (its URL substituted), bash with the same substitution,
TOML through ``config.load``, JSON parsed. The gateway is the default setup a reader starts first:
``lattice serve`` with no config, as the README runs it, on a clean machine (the embedded
SmolLM2-135M-Instruct in-process, no key). Only ``text`` blocks (sample output, diagrams) are
skipped; a block in any other language fails until it is labelled. The README's two bash blocks are
the install-and-run and the full test command, checked for what they say."""

from __future__ import annotations

import json
import os
import re
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from local_lattice.config import load
from local_lattice.config_env import ENV_SETTINGS
from tests.support.procs import PYTHON, RunningProcess
from tests.support.servers import default_gateway

ROOT = Path(__file__).resolve().parents[2]
DOCUMENTED_URL = "http://127.0.0.1:5001"
FILES = [ROOT / "README.md", ROOT / "llms.txt", *sorted((ROOT / "docs").rglob("*.md"))]
FENCE = re.compile(r"^```([^\n`]*)\n(.*?)^```", flags=re.S | re.M)


def blocks(path: Path) -> list[tuple[str, str]]:
    return [(lang.strip(), body) for lang, body in FENCE.findall(path.read_text())]


def cases() -> list[tuple[str, int, str]]:
    out = []
    for path in FILES:
        for index, (lang, _) in enumerate(blocks(path)):
            if lang != "text" and not (path.name == "README.md" and lang == "bash"):
                out.append((str(path.relative_to(ROOT)), index, lang))
    return out


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningProcess]:
    """The default setup; it has no key, so the documented ``your-key`` is accepted as any key is."""
    with default_gateway(tmp_path_factory.mktemp("docs-machine")) as proc:
        yield proc


def substituted(source: str, gateway: RunningProcess) -> str:
    return source.replace(DOCUMENTED_URL, gateway.url)


def run_python(source: str, where: str) -> str:
    """Runs as a reader would: a script in its own interpreter (clients the example leaves open
    close with it, not during this test session)."""
    done = subprocess.run([PYTHON, "-c", source], capture_output=True, text=True, timeout=180, cwd=ROOT)
    assert done.returncode == 0, f"{where}:\n{done.stdout}{done.stderr}"
    return done.stdout


def run_bash(source: str, tmp: Path) -> str:
    """Runs with ``lattice`` on PATH (this checkout's CLI) and ``python`` meaning the test's Python."""
    shims = tmp / "bin"
    shims.mkdir(exist_ok=True)
    for name, target in (("lattice", f'{PYTHON} -m local_lattice "$@"'), ("python", f'{PYTHON} "$@"')):
        (shims / name).write_text(f"#!/bin/sh\nexec {target}\n")
        (shims / name).chmod(0o755)
    env = {**os.environ, "PATH": f"{shims}:{os.environ['PATH']}", "MIDDLE_LAYER_API_KEY": ""}
    done = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", source], capture_output=True, text=True, timeout=180, env=env, cwd=ROOT
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def check_toml(source: str) -> None:
    names = re.findall(r"\$\{env:([A-Za-z_][A-Za-z0-9_]*)\}", source)
    with tempfile.NamedTemporaryFile("w", suffix=".toml", delete=False) as handle:
        handle.write(source)
    try:
        load(handle.name, {name: "value" for name in names})
    finally:
        Path(handle.name).unlink()


@pytest.mark.slow
@pytest.mark.parametrize(("name", "index", "lang"), cases())
def test_block_runs(gateway: RunningProcess, tmp_path: Path, name: str, index: int, lang: str) -> None:
    source = blocks(ROOT / name)[index][1]
    where = f"{name} block {index} ({lang})"
    if lang == "python":
        assert run_python(substituted(source, gateway), where).strip(), f"{where} printed nothing"
    elif lang == "bash":
        assert run_bash(substituted(source, gateway), tmp_path).strip(), f"{where} printed nothing"
    elif lang == "toml":
        check_toml(source)
    elif lang == "json":
        json.loads(source)
    else:
        pytest.fail(f"{where}: label the block python, bash, toml, json, or text for output samples")


def test_every_file_has_its_blocks_found() -> None:
    assert (ROOT / "llms.txt").exists()
    for path in FILES:
        assert path.read_text().count("```") == 2 * len(blocks(path)), f"unbalanced fences in {path}"


README = (ROOT / "README.md").read_text()


def test_env_table_lists_every_setting_once() -> None:
    rows = re.findall(r"^\| `([A-Z0-9_]+)`", README, flags=re.M)
    for setting in ENV_SETTINGS:
        assert f"`{setting.name}`" in README, setting.name
    repeated = sorted({name for name in rows if rows.count(name) > 1})
    assert repeated == []


def test_the_readme_says_the_gateway_runs_models() -> None:
    comparison = README[README.index("## How it compares") :]
    row = next(line for line in comparison.splitlines() if line.startswith("| Runs inference itself"))
    assert row.split("|")[2].strip().startswith("yes, in-process (llama.cpp, MLX)")
    assert "does not run models" not in README


def test_the_swarm_route_table_shows_each_body() -> None:
    for route, fields in (
        ("/swarm/fanout", "{models, messages"),
        ("/swarm/vote", "{models, messages, strategy?, judge?"),
        ("/swarm/pipeline", "{steps: [{name, model"),
        ("/swarm/debate", "{models, messages, rounds?"),
    ):
        row = next(line for line in README.splitlines() if line.startswith(f"| `POST {route}`"))
        assert fields in row, row


def test_exactly_one_run_and_one_test_command() -> None:
    bash = [body for lang, body in blocks(ROOT / "README.md") if lang == "bash"]
    assert len(bash) == 2
    assert "lattice serve" in bash[0]
    assert bash[1].strip() == "bash scripts/test.sh"
    assert "scripts/test.sh" in (ROOT / ".ci" / "run").read_text()


def test_integration_guides_exist_and_are_linked() -> None:
    for guide in ("openai-sdk", "anthropic-sdk", "langgraph", "agents-sdk"):
        assert (ROOT / "docs" / "integrations" / f"{guide}.md").exists()
        assert f"docs/integrations/{guide}.md" in README
