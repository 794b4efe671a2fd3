"""The Dockerfile (Docker itself cannot run here): it runs as a non-root user, installs the extras
named by the EXTRAS build argument, and its HEALTHCHECK command — run here as the shell would run
it — passes against a live gateway and fails when nothing answers."""

from __future__ import annotations

import re
import subprocess
import tomllib
from pathlib import Path

import pytest

from tests.support.procs import PYTHON, RunningProcess, free_port
from tests.support.servers import gateway_process

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = (ROOT / "Dockerfile").read_text()


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    joined = re.sub(r"\\\n", " ", DOCKERFILE)
    out = []
    for line in joined.splitlines():
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            word, _, rest = stripped.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def test_base_image_and_non_root_user() -> None:
    steps = instructions()
    assert steps[0] == ("FROM", "python:3.11-slim")
    users = [args for word, args in steps if word == "USER"]
    assert users
    assert users[-1] not in ("root", "0")
    assert f"useradd --create-home --uid 10001 {users[-1]}" in DOCKERFILE
    assert [word for word, _ in steps].index("USER") > max(i for i, (w, _) in enumerate(steps) if w == "RUN")


def test_extras_come_from_the_build_argument() -> None:
    steps = instructions()
    assert ("ARG", 'EXTRAS=""') in steps
    install = next(args for word, args in steps if word == "RUN" and "pip install" in args)
    spec = install.split("pip install", 1)[1].strip().strip('"')
    for extras, expected in (("", "."), ("demo", ".[demo]"), ("anthropic,otel", ".[anthropic,otel]")):
        shown = subprocess.run(["sh", "-c", f'echo "{spec}"'], env={"EXTRAS": extras}, capture_output=True, text=True)
        assert shown.stdout.strip() == expected
    known = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    for named in re.findall(r"EXTRAS=([a-z,]+)", DOCKERFILE + (ROOT / "README.md").read_text()):
        assert set(named.split(",")) <= set(known), named


def healthcheck_command() -> str:
    args = next(args for word, args in instructions() if word == "HEALTHCHECK")
    assert "--interval" in args
    return args.split(" CMD ", 1)[1]


def run_healthcheck(port: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """As the image's shell runs it: ``python`` on PATH is the interpreter, PORT set by ENV."""
    (tmp_path / "python").symlink_to(PYTHON)
    env = {"PORT": port, "PATH": f"{tmp_path}:/usr/bin:/bin"}
    return subprocess.run(["sh", "-c", healthcheck_command()], env=env, capture_output=True, text=True, timeout=30)


@pytest.mark.slow
def test_healthcheck_passes_on_a_live_gateway(smollm2_server: RunningProcess, tmp_path: Path) -> None:
    with gateway_process(f'[[backends]]\nname = "llama"\nurl = "{smollm2_server.url}"\n') as gateway:
        done = run_healthcheck(gateway.url.rsplit(":", 1)[1], tmp_path)
    assert done.returncode == 0, done.stderr


def test_healthcheck_fails_when_nothing_answers(tmp_path: Path) -> None:
    done = run_healthcheck(str(free_port()), tmp_path)
    assert done.returncode == 1
    assert "Connection refused" in done.stderr
