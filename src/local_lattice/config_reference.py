"""``docs/configuration.md``, generated from the config models and ``ENV_SETTINGS`` so the reference
can never drift from the code (``lattice config-docs`` prints it; a test compares the committed file).
Reads the pydantic tree only; it validates nothing and starts nothing."""

from __future__ import annotations

from typing import Any, get_args, get_origin

from pydantic import BaseModel, SecretStr
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from local_lattice.config import BackendConfig, Config
from local_lattice.config_env import ENV_SETTINGS
from local_lattice.config_legacy import RENAMED, RETIRED

HEADER = """# Configuration reference

Generated from the configuration models by `lattice config-docs`; do not edit by hand.
One TOML file (`lattice serve --config FILE`, or `LATTICE_CONFIG`) whose unknown keys are errors that
name the key; environment variables override it. Secrets come only from the environment: write
`api_key = "${env:NAME}"`. [`lattice.example.toml`](../lattice.example.toml) is a commented example and
[`config-schema.json`](config-schema.json) the JSON schema (`lattice config-schema`).

A minimal file:

```toml
[server]
api_keys = ["${env:LATTICE_KEY}"]

[[backends]]
name = "local"
type = "openai"
url = "http://127.0.0.1:1234/v1"

[roles]
coder = ["qwen2.5-coder", "*coder*"]
```
"""


def _type_name(annotation: Any) -> str:
    if annotation is SecretStr:
        return "secret string"
    origin, args = get_origin(annotation), get_args(annotation)
    if origin is None:
        return getattr(annotation, "__name__", str(annotation)).replace("NoneType", "none")
    if str(origin) == "typing.Literal":
        return " | ".join(f'"{a}"' for a in args)
    inner = [_type_name(a) for a in args if a is not type(None)]
    optional = " (optional)" if type(None) in args else ""
    if origin is list:
        return f"list of {inner[0]}"
    if origin is dict:
        return f"table of {inner[1]}"
    return " | ".join(inner) + optional


def _default(field: FieldInfo) -> str:
    if field.default_factory is not None:
        value: Any = field.default_factory()  # type: ignore[call-arg]
    elif field.default is PydanticUndefined:
        return "required"
    else:
        value = field.default
    if isinstance(value, BaseModel):
        return "-"
    if value is None:
        return "unset"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f'"{value}"'
    return str(value).replace("'", '"')


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _table(model: type[BaseModel], prefix: str) -> list[str]:
    lines = ["| Key | Type | Default | Meaning |", "|---|---|---|---|"]
    for name, field in model.model_fields.items():
        kind = _cell(_type_name(field.annotation))
        lines.append(f"| `{prefix}{name}` | {kind} | `{_default(field)}` | {_cell(field.description or '')} |")
    return lines


def _section(title: str, model: type[BaseModel], prefix: str) -> list[str]:
    doc = " ".join((model.__doc__ or "").split())
    return [f"## `{title}`", "", doc, "", *_table(model, prefix), ""]


def markdown() -> str:
    """The whole reference as Markdown."""
    out = [HEADER]
    top = Config.model_fields
    out += ["## Top level", "", *_table_of(top, ("roles", "profiles")), ""]
    for name, field in top.items():
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            out += _section(f"[{name}]", annotation, f"{name}.")
    out += _section("[[backends]]", BackendConfig, "")
    out += [
        "## Environment variables",
        "",
        "Each one overrides the key it names (`backends.*` sets the key on every backend that leaves it unset).",
        "",
        "| Variable | Key | Meaning |",
        "|---|---|---|",
    ]
    for setting in ENV_SETTINGS:
        head, *rest = setting.path
        # ANTHROPIC_* fill the anthropic backends' keys (and a key alone adds one named anthropic).
        path = ["backends", "<anthropic>", *rest] if head == "anthropic" else setting.path
        key = ".".join(part for part in path if part != "+")
        out.append(f"| `{setting.name}` | `{key}` | {_cell(setting.help)} |")
    out.append("| `LM_STUDIO_URL` | `backends` | Adds an LM Studio backend when the file has none. |")
    out.append(
        "| `LATTICE_LMSTUDIO_NAME` | `backends.name` | Name of that backend (default `lmstudio`; "
        "`local-lattice-lmstudio` uses `local`). |"
    )
    for old, new in RENAMED.items():
        out.append(f"| `{old}` | - | Read as `{new}` when that is unset. |")
    for name in RETIRED:
        out.append(f"| `{name}` | - | No effect here; reported at start with what to use instead. |")
    out.append("| `LATTICE_CONFIG` | - | The config file used when `--config` is not given. |")
    return "\n".join(out) + "\n"


def _table_of(fields: dict[str, FieldInfo], names: tuple[str, ...]) -> list[str]:
    lines = ["| Key | Type | Default | Meaning |", "|---|---|---|---|"]
    for name in names:
        field = fields[name]
        kind = _cell(_type_name(field.annotation))
        lines.append(f"| `{name}` | {kind} | `{_default(field)}` | {_cell(field.description or '')} |")
    return lines
