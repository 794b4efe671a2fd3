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


def test_committed_configuration_reference_is_generated() -> None:
    from local_lattice.config_reference import markdown

    committed = (ROOT / "docs" / "configuration.md").read_text()
    assert committed == markdown(), "regenerate: lattice config-docs > docs/configuration.md"


def test_configuration_reference_covers_every_key_and_variable() -> None:
    from local_lattice.config import BackendConfig, Config
    from local_lattice.config_env import ENV_SETTINGS
    from local_lattice.config_reference import markdown

    text = markdown()
    for section, field in Config.model_fields.items():
        annotation = field.annotation
        if isinstance(annotation, type) and hasattr(annotation, "model_fields"):
            for key in annotation.model_fields:
                assert f"`{section}.{key}`" in text, f"{section}.{key}"
    for key in BackendConfig.model_fields:
        assert f"| `{key}` |" in text, key
    for setting in ENV_SETTINGS:
        assert f"`{setting.name}`" in text, setting.name
