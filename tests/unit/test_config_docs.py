"""The documented config artifacts stay true: the example validates, the schema is current."""

from __future__ import annotations

import json
from pathlib import Path

from local_lattice.config import json_schema, load

ROOT = Path(__file__).resolve().parents[2]


def test_example_config_validates() -> None:
    config = load(ROOT / "lattice.example.toml", {"LATTICE_KEY": "k", "GROQ_API_KEY": "g"})
    assert [b.name for b in config.backends] == ["lmstudio", "ollama", "groq"]
    assert config.roles["coder"] == ["qwen2.5-coder", "*coder*"]


def test_committed_schema_matches_the_models() -> None:
    committed = json.loads((ROOT / "docs" / "config-schema.json").read_text())
    assert committed == json.loads(json.dumps(json_schema())), (
        "regenerate: lattice config-schema > docs/config-schema.json"
    )
