"""``DELETE /v1/models/{id}``: our fields and the original's ``ok`` / ``resident`` (and ``alias`` / ``note``
when deferred), also inside the 404's error; grab mode refuses, and refuses swarm runs."""

from __future__ import annotations

from dataclasses import dataclass

from starlette.testclient import TestClient

from local_lattice.api.app import create_app
from local_lattice.config import load
from local_lattice.types import ModelInfo
from tests.support.fakes import FakeLoaderBackend


@dataclass
class BusyLoader(FakeLoaderBackend):
    """Unloads are deferred: the model is in use."""

    async def unload(self, model: str) -> bool:
        return False


def client(backend: FakeLoaderBackend, **env: str) -> TestClient:
    config = load(None, {"LATTICE_LEDGER_PATH": "off", **env})
    return TestClient(create_app(config, {backend.name: backend}))


def models() -> list[ModelInfo]:
    return [ModelInfo("a", "local", loaded=True), ModelInfo("b", "local", loaded=True), ModelInfo("c", "local")]


def test_an_unload_says_ok_and_what_stays_resident() -> None:
    with client(FakeLoaderBackend("local", models())) as http:
        answer = http.delete("/v1/models/a")
        missing = http.delete("/v1/models/c")
        unknown = http.delete("/v1/models/nowhere")
    assert answer.status_code == 200
    assert answer.json() == {"ok": True, "id": "a", "backend": "local", "unloaded": True, "deferred": False,
                             "resident": ["b"]}  # fmt: skip
    for refused in (missing, unknown):
        assert refused.status_code == 404
        error = refused.json()["error"]
        assert (error["code"], error["ok"], error["resident"]) == ("model_not_loaded", False, ["b"])


def test_a_deferred_unload_names_the_alias_and_says_why() -> None:
    with client(BusyLoader("local", models())) as http:
        answer = http.delete("/v1/models/b")
    assert answer.status_code == 202
    body = answer.json()
    assert (body["ok"], body["unloaded"], body["deferred"], body["alias"]) == (True, False, True, "b")
    assert "in use" in body["note"]
    assert body["resident"] == ["a", "b"]


def test_grab_mode_refuses_unloads_and_swarms() -> None:
    with client(
        FakeLoaderBackend("mlx-grab", [ModelInfo("mlx", "mlx-grab", loaded=True)]), MLX_GRAB_MODEL="/m"
    ) as http:
        unload = http.delete("/v1/models/mlx")
        vote = http.post("/swarm/vote", json={"models": ["mlx"], "messages": [{"role": "user", "content": "hi"}]})
        chat = http.post(
            "/v1/chat/completions", json={"model": "swarmCouncil", "messages": [{"role": "user", "content": "hi"}]}
        )
    assert (unload.status_code, unload.json()["error"]["code"]) == (400, "grab_mode")
    assert (vote.status_code, vote.json()["error"]["code"]) == (503, "swarm_disabled_in_grab_mode")
    assert "retry-after" not in vote.headers  # waiting does not help: it is how the gateway was started
    assert chat.status_code == 200
    assert chat.headers["x-model-routed-to"] == "mlx-grab/mlx"
