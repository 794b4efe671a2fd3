"""Every row of the grammar table in docs/capabilities.md, executed."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from local_lattice.errors import ModelNotFound
from local_lattice.routing.resolver import resolve
from tests.unit.routing.support import inventory, policy

DOC = Path(__file__).resolve().parents[3] / "docs" / "capabilities.md"


def table_rows() -> list[tuple[str, str, str, str]]:
    text = DOC.read_text(encoding="utf-8")
    section = text.split("### The grammar, executed", 1)[1].split("\n## ", 1)[0]
    rows = []
    for line in section.splitlines():
        if not line.startswith("| `") and not line.startswith("| ``"):
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        spec, models, settings, expected = (re.sub(r"^`(.*)`$", r"\1", c) for c in cells)
        rows.append((spec if spec != "``" else "", models, settings, expected))
    return rows


ROWS = table_rows()


def test_the_table_is_there() -> None:
    assert len(ROWS) >= 30


@pytest.mark.parametrize(("spec", "models", "settings", "expected"), ROWS)
def test_row(spec: str, models: str, settings: str, expected: str) -> None:
    if expected == "404":
        with pytest.raises(ModelNotFound) as caught:
            resolve(spec, inventory(models), policy=policy(settings))
        assert caught.value.status == 404
        assert caught.value.code == "model_not_found"
        return
    chosen = resolve(spec, inventory(models), policy=policy(settings)).chosen
    assert f"{chosen.backend}/{chosen.id}" == expected
