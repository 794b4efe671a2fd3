"""An OpenAI-compatible backend in a fleet: how it passes a session on to a server's prompt cache, and
its fresh probe for active health checks."""

from __future__ import annotations

import pytest

from local_lattice.backends.openai_compat import OpenAIBackend
from local_lattice.config import BackendConfig
from local_lattice.types import BackendRequest

SESSION = "0123456789abcdef0123456789abcdef"


def body_sent(url: str, mode: str, session: str | None = SESSION, **extra: object) -> dict[str, object]:
    backend = OpenAIBackend(BackendConfig.model_validate({"name": "up", "url": url, "prompt_cache": mode}))
    request = BackendRequest("chat", "m", {"messages": [], **extra}, session=session)
    return backend.prepare_body(request)


@pytest.mark.parametrize(
    ("url", "mode", "field", "value"),
    [
        ("http://127.0.0.1:8080/v1", "cache_prompt", "cache_prompt", True),
        ("http://127.0.0.1:8080/v1", "prompt_cache_key", "prompt_cache_key", SESSION),
        ("https://api.openai.com/v1", "auto", "prompt_cache_key", SESSION),
    ],
)
def test_a_session_is_marked_for_the_servers_cache(url: str, mode: str, field: str, value: object) -> None:
    assert body_sent(url, mode)[field] == value


def test_nothing_is_added_without_a_session_when_off_or_for_an_unknown_server() -> None:
    for body in (
        body_sent("http://127.0.0.1:8080/v1", "cache_prompt", session=None),
        body_sent("https://api.openai.com/v1", "off"),
        body_sent("http://127.0.0.1:8080/v1", "auto"),
    ):
        assert "cache_prompt" not in body
        assert "prompt_cache_key" not in body


def test_the_clients_own_values_win() -> None:
    assert body_sent("https://api.openai.com/v1", "auto", prompt_cache_key="mine")["prompt_cache_key"] == "mine"
    assert body_sent("http://x:1/v1", "cache_prompt", cache_prompt=False)["cache_prompt"] is False


async def test_a_probe_looks_afresh_and_a_failed_one_keeps_the_cached_list() -> None:
    from local_lattice.types import ModelInfo

    backend = OpenAIBackend(BackendConfig.model_validate({"name": "up", "url": "http://127.0.0.1:9/v1"}))
    cached = [ModelInfo("m", "up")]
    backend._models, backend._models_at = cached, 1e18  # a list fetched a moment ago
    health = await backend.probe()  # nothing listens on port 9
    assert not health.ok
    assert "unreachable" in health.detail
    assert await backend.models() == cached
    await backend.aclose()
