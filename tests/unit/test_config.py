from __future__ import annotations

from pathlib import Path

import pytest

from local_lattice.config import ConfigError, ServerConfig, check_bind, load


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "lattice.toml"
    path.write_text(text)
    return path


def test_defaults_without_file_or_env() -> None:
    config = load(None, {})
    assert config.server.host == "127.0.0.1"
    assert config.server.port == 5001
    assert config.server.max_request_bytes == 10 * 1024 * 1024
    assert config.backends == []


def test_env_overrides_file(tmp_path: Path) -> None:
    path = write(tmp_path, '[server]\nport = 7000\napi_keys = ["from-file"]\n')
    config = load(path, {"PORT": "7100", "MIDDLE_LAYER_API_KEY": "from-env", "CORS_ORIGINS": "https://a, https://b"})
    assert config.server.port == 7100
    assert [k.get_secret_value() for k in config.server.api_keys] == ["from-file", "from-env"]
    assert config.server.cors_origins == ["https://a", "https://b"]


def test_secrets_come_from_env_interpolation(tmp_path: Path) -> None:
    path = write(tmp_path, '[[backends]]\nname = "up"\nurl = "http://h:1/v1"\napi_key = "${env:UP_KEY}"\n')
    config = load(path, {"UP_KEY": "s3cret"})
    assert config.backends[0].api_key is not None
    assert config.backends[0].api_key.get_secret_value() == "s3cret"
    with pytest.raises(ConfigError, match="UP_KEY is not set"):
        load(path, {})


def test_backend_env_settings_apply_to_every_backend(tmp_path: Path) -> None:
    path = write(
        tmp_path, '[[backends]]\nname = "a"\nurl = "http://h:1/v1"\n[[backends]]\nname = "b"\nurl = "http://h:2"\n'
    )
    config = load(path, {"MODEL_LIST_TTL": "5", "GENERATION_TIMEOUT": "12"})
    assert [(b.model_list_ttl, b.timeout) for b in config.backends] == [(5.0, 12.0), (5.0, 12.0)]


def test_lm_studio_url_adds_a_backend_when_none_configured() -> None:
    config = load(None, {"LM_STUDIO_URL": "http://127.0.0.1:1234"})
    assert [(b.name, b.type, b.url) for b in config.backends] == [("lmstudio", "lmstudio", "http://127.0.0.1:1234/v1")]


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("[server\n", "lattice.toml"),
        ('[server]\nport = "x"\n', "server.port"),
        ("[server]\nbogus = 1\n", "server.bogus"),
        ('[[backends]]\nname = "a"\nurl = "ftp://x"\n', "backends.0.url"),
        ('[[backends]]\nname = "a"\nurl = "http://x"\n[[backends]]\nname = "a"\nurl = "http://y"\n', "used twice"),
    ],
)
def test_bad_config_names_the_place(tmp_path: Path, text: str, needle: str) -> None:
    with pytest.raises(ConfigError, match=needle):
        load(write(tmp_path, text), {})


def test_bad_env_value_names_the_variable() -> None:
    with pytest.raises(ConfigError, match="LATTICE_LOG_TIMING"):
        load(None, {"LATTICE_LOG_TIMING": "maybe"})


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="file not found"):
        load(tmp_path / "nope.toml", {})


@pytest.mark.parametrize(
    ("host", "keys", "allow", "ok"),
    [
        ("127.0.0.1", [], False, True),
        ("localhost", [], False, True),
        ("::1", [], False, True),
        ("0.0.0.0", [], False, False),
        ("0.0.0.0", ["k"], False, True),
        ("0.0.0.0", [], True, True),
    ],
)
def test_public_bind_needs_a_key(host: str, keys: list[str], allow: bool, ok: bool) -> None:
    server = ServerConfig.model_validate({"host": host, "api_keys": keys, "allow_public_no_auth": allow})
    if ok:
        check_bind(server)
    else:
        with pytest.raises(ConfigError, match="MIDDLE_LAYER_ALLOW_PUBLIC_NO_AUTH"):
            check_bind(server)
