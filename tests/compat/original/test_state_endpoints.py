"""``/healthz`` and ``/swarm/models`` as the original's clients read them, black-box: without a valid
key ``/healthz`` says only whether the gateway serves and discloses nothing; with one (or when the
gateway asks for no key, as the original then did) it carries the original's full state."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.compat.original.conftest import KEY, SCRIPTED_MODELS, scripted_toml
from tests.support.procs import RunningProcess, free_port
from tests.support.servers import gateway_process

pytestmark = pytest.mark.slow

LMSTUDIO_FIELDS = {
    "ok", "lmstudio_model", "lmstudio_models", "lmstudio_loaded_models", "lmstudio_error", "model_roles",
    "model_roles_source", "prefer_loaded_models", "strict_loaded_models", "default_model", "max_parallel",
    "per_model_inflight_cap", "on_model_miss", "anthropic_enabled", "anthropic_model", "swarm_chat_enabled",
    "swarm_chat_default_models", "swarm_chat_default_strategy", "swarm_chat_auto_tokens", "swarm_chat_canonical",
    "swarm_chat_aliases", "generation_advisory_timeout_sec",
}  # fmt: skip


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"X-API-Key": "wrong"},
        {"Authorization": "Bearer wrong"},
        {"Authorization": f"Basic {KEY}"},
        {"X-API-Key": KEY, "Authorization": "Token x"},  # a malformed credential beside a good one
        {"X-API-Key": ""},
    ],
    ids=["none", "wrong-key", "wrong-bearer", "basic", "malformed-beside-good", "empty"],
)
def test_without_a_valid_key_healthz_discloses_nothing(
    scripted_gateway: RunningProcess, headers: dict[str, str]
) -> None:
    response = httpx.get(scripted_gateway.url + "/healthz", headers=headers)
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "ok": True}
    assert not any(model in response.text for model in SCRIPTED_MODELS)


def test_a_key_in_the_query_string_shows_nothing_either(scripted_gateway: RunningProcess) -> None:
    response = httpx.get(scripted_gateway.url + f"/healthz?api_key={KEY}")
    assert response.json() == {"status": "ok", "ok": True}


@pytest.mark.parametrize("headers", [{"X-API-Key": KEY}, {"Authorization": f"Bearer {KEY}"}])
def test_with_the_key_healthz_is_the_originals_state_beside_ours(
    scripted: httpx.Client, headers: dict[str, str]
) -> None:
    body = httpx.get(scripted.base_url.join("/healthz"), headers=headers).json()
    assert body.keys() >= LMSTUDIO_FIELDS
    assert body["backends"]["upstream"]["ok"] is True  # ours is still there
    assert (body["ok"], body["lmstudio_model"], body["lmstudio_models"]) == (True, SCRIPTED_MODELS[0], SCRIPTED_MODELS)
    assert (body["lmstudio_loaded_models"], body["lmstudio_error"], body["mlx_models"]) == ([], None, [])
    assert (body["prefer_loaded_models"], body["strict_loaded_models"], body["on_model_miss"]) == (True, True, "error")
    assert body["model_roles"]["coder"] == ["coder-model"]
    assert body["model_roles_source"] == "MODEL_ROLES_JSON"
    assert (body["max_parallel"], body["per_model_inflight_cap"]) == (4, 1)
    assert (body["swarm_chat_default_strategy"], body["swarm_chat_canonical"]) == ("best-of-n", "swarmCouncil")
    assert body["swarm_chat_aliases"]["swarmvote"] == {"intent": "council", "deprecated": False}
    assert body["swarm_chat_aliases"]["swarm/pipeline"] == {"intent": "pipeline", "deprecated": False}
    assert "auto" in body["swarm_chat_auto_tokens"]
    assert body["admission"]["inflight_by_alias"] == {}


def test_the_runtime_default_model_shows_on_healthz(scripted: httpx.Client) -> None:
    scripted.post("/dashboard/api/preferences", json={"default_model": "coder-model"})
    try:
        assert scripted.get("/healthz").json()["default_model"] == "coder-model"
        routed = scripted.post(
            "/v1/chat/completions", json={"model": "auto", "messages": [{"role": "user", "content": "x"}]}
        )
        assert routed.headers["x-model-routed-to"] == "upstream/coder-model"
    finally:
        scripted.post("/dashboard/api/preferences", json={"default_model": ""})


def test_swarm_models_carries_the_originals_fields(scripted: httpx.Client) -> None:
    body = scripted.get("/swarm/models").json()
    assert (body["models"], body["loaded"]) == (SCRIPTED_MODELS, [])
    assert (body["max_parallel"], body["max_concurrent_models"]) == (4, 2)
    assert (body["anthropic_available"], body["anthropic_model"]) == (False, None)
    assert (body["swarm_chat_enabled"], body["swarm_chat_default_models"]) == (True, ["auto"])
    assert body["swarm_chat_default_strategy"] == "best-of-n"
    assert body["roles"]["fast"] == ["fast-model"]
    assert body["swarm"]["max_parallel"] == 4  # ours beside


@pytest.fixture(scope="module")
def keyless_gateway(scripted_upstream_url: str) -> Iterator[RunningProcess]:
    with gateway_process(scripted_toml(scripted_upstream_url, api_key=None)) as proc:
        yield proc


def test_with_no_key_configured_everyone_sees_the_state(keyless_gateway: RunningProcess) -> None:
    body = httpx.get(keyless_gateway.url + "/healthz").json()
    assert body.keys() >= LMSTUDIO_FIELDS
    assert body["lmstudio_models"] == SCRIPTED_MODELS


def test_a_dead_upstream_is_503_and_still_discloses_nothing() -> None:
    toml = scripted_toml(f"http://127.0.0.1:{free_port()}/v1")
    with gateway_process(toml) as gateway:
        public = httpx.get(gateway.url + "/healthz")
        assert (public.status_code, public.json()) == (503, {"status": "unavailable", "ok": False})
        full = httpx.get(gateway.url + "/healthz", headers={"X-API-Key": KEY})
        assert full.status_code == 503
        body = full.json()
        assert (body["ok"], body["lmstudio_models"], body["lmstudio_model"]) == (False, [], None)
        assert "upstream" in body["lmstudio_error"]
