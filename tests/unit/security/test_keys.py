"""Named keys: the keys-file format, the config forms and the constant-time match."""

from __future__ import annotations

from pathlib import Path

import pytest

from local_lattice.config import ConfigError, check_bind, load
from local_lattice.security.keys import KeyRing, parse_keys_file


def test_keys_file_lines() -> None:
    text = "# team keys\n\nalice: sk-alice-123\nci-bot:abc:with:colons\n"
    assert parse_keys_file(text) == [("alice", "sk-alice-123"), ("ci-bot", "abc:with:colons")]


@pytest.mark.parametrize(("text", "line"), [("nocolon\n", 1), ("ok:1\nbad name:x\n", 2), ("a:\n", 1)])
def test_bad_keys_file_lines_are_named(text: str, line: int) -> None:
    with pytest.raises(ValueError, match=f"line {line}"):
        parse_keys_file(text)


def test_keyring_names_the_matching_key() -> None:
    ring = KeyRing([("a", "k1"), ("b", "k2")])
    assert ring.match(b"k2") == "b"
    assert ring.match(b"k1") == "a"
    assert ring.match(b"k") is None
    assert ring.match(b"k1 ") is None
    assert not KeyRing([])


def test_every_source_of_keys_with_names(tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    keys.write_text("carol:from-file\n")
    config_file = tmp_path / "lattice.toml"
    config_file.write_text(
        f'[server]\napi_keys = ["plain", {{ name = "bob", key = "${{env:BOB}}" }}]\nkeys_file = "{keys}"\n'
    )
    config = load(config_file, {"BOB": "bob-secret", "MIDDLE_LAYER_API_KEY": "from-env"})
    assert config.server.named_keys() == [
        ("key-1", "plain"),
        ("bob", "bob-secret"),
        ("key-3", "from-env"),
        ("carol", "from-file"),
    ]


def test_keys_file_from_env_alone_enables_auth_for_a_public_bind(tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    keys.write_text("dave:secret\n")
    config = load(None, {"LATTICE_KEYS_FILE": str(keys), "HOST": "0.0.0.0"})
    check_bind(config.server)  # does not raise: there is a key
    assert config.server.named_keys() == [("dave", "secret")]


def test_key_file_problems_are_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="keys file"):
        load(None, {"LATTICE_KEYS_FILE": str(tmp_path / "missing")})
    twice = tmp_path / "twice"
    twice.write_text("x:1\nx:2\n")
    with pytest.raises(ConfigError, match="used twice: x"):
        load(None, {"LATTICE_KEYS_FILE": str(twice)})


def test_cors_wildcard_with_credentials_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text('[server]\ncors_origins = ["*"]\ncors_allow_credentials = true\n')
    with pytest.raises(ConfigError, match="cannot be combined"):
        load(path, {})
