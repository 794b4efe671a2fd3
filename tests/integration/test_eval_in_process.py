"""``lattice eval --config``: the gateway is started in-process from a config over a real HTTP upstream."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from local_lattice.cli import app
from tests.support.upstream import scripted_upstream

pytestmark = pytest.mark.slow


def test_eval_with_an_in_process_gateway(tmp_path: Path) -> None:
    dataset = tmp_path / "d.jsonl"
    dataset.write_text(
        json.dumps({"id": "1", "prompt": "say ok", "expected": "ok", "grader": "exact"}) + "\n"
        + json.dumps({"id": "2", "prompt": "say no", "expected": "no", "grader": "substring"}) + "\n"
    )  # fmt: skip
    with scripted_upstream() as (url, rec):
        config = tmp_path / "c.toml"
        config.write_text(f'[[backends]]\nname = "up"\nurl = "{url}"\n')
        out = tmp_path / "rows.jsonl"
        argv = ["eval", str(dataset), "--config", str(config), "--models", "ok-model,ok-model", "--out", str(out)]
        result = CliRunner().invoke(app, [*argv, "--methods", "single,vote,majority"], env={"MIDDLE_LAYER_API_KEY": ""})
    assert result.exit_code == 0, result.output
    table, _, verdicts = result.output.partition("\n\n")
    lines = table.splitlines()
    assert [v.split(":")[0] for v in verdicts.splitlines()] == ["vote", "majority"]
    assert [line.split()[:3] for line in lines[1:]] == [
        ["single", "2", "0.50"], ["vote", "2", "0.50"], ["majority", "2", "0.50"]
    ]  # fmt: skip
    assert len(out.read_text().splitlines()) == 6
    assert len(rec.bodies) >= 2 + 4 + 4
