"""The README tells the truth: its Python examples run against a live gateway, its env table covers
every environment variable the config reads, and its two commands are the ones the project uses."""

from __future__ import annotations

import contextlib
import io
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from local_lattice.config import ENV_SETTINGS
from tests.support.procs import RunningProcess
from tests.support.servers import gateway_process

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()
KEY = "readme-key"


def code_blocks(text: str, language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", text, flags=re.S)


@pytest.fixture(scope="module")
def gateway(smollm2_server: RunningProcess) -> Iterator[RunningProcess]:
    toml = f'[server]\napi_keys = ["{KEY}"]\n[[backends]]\nname = "llama"\nurl = "{smollm2_server.url}"\n'
    with gateway_process(toml) as gw:
        yield gw


@pytest.mark.slow
@pytest.mark.parametrize("index", range(len(code_blocks(README, "python"))))
def test_python_examples_run(gateway: RunningProcess, index: int) -> None:
    source = code_blocks(README, "python")[index]
    source = source.replace("http://127.0.0.1:5001", gateway.url).replace("your-key", KEY)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(source, f"README.md python block {index}", "exec"), {})
    assert out.getvalue().strip()


def test_env_table_lists_every_setting() -> None:
    for setting in ENV_SETTINGS:
        assert f"`{setting.name}`" in README, setting.name


def test_exactly_one_run_and_one_test_command() -> None:
    bash = code_blocks(README, "bash")
    assert len(bash) == 2
    assert "lattice serve" in bash[0]
    assert bash[1].strip() == "bash scripts/test.sh"
    assert "scripts/test.sh" in (ROOT / ".ci" / "run").read_text()
