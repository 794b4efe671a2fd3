"""The dashboard: a public page under a strict CSP, and a key-protected API with the original's routes."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from local_lattice.api.app import create_app
from local_lattice.backends.fake import FakeBackend
from local_lattice.config import load
from local_lattice.observability.record import SwarmCandidate, SwarmRun
from local_lattice.types import ModelInfo
from tests.support.fakes import FakeLoaderBackend

KEY = "dash-key"
AUTH = {"X-API-Key": KEY}
CHAT = "/v1/chat/completions"
API_ROUTES = [
    ("GET", "/dashboard/api/snapshot"),
    ("GET", "/dashboard/api/config"),
    ("GET", "/dashboard/api/preferences"),
    ("POST", "/dashboard/api/preferences"),
    ("POST", "/dashboard/api/models/load"),
    ("POST", "/dashboard/api/models/unload"),
    ("POST", "/dashboard/api/admin/rescan"),
]


def app_with(tmp_path: Path, **env: str) -> TestClient:
    config = load(None, {"MIDDLE_LAYER_API_KEY": KEY, "LATTICE_LEDGER_PATH": "off", **env})
    config.roles = {"coder": ["m1", "*coder*"]}
    local = FakeLoaderBackend(
        "local", [ModelInfo("small", "local", loaded=True), ModelInfo("big", "local", loaded=False)]
    )
    remote = FakeBackend.with_models("remote", "m1", reply="one two three")
    return TestClient(create_app(config, {"local": local, "remote": remote}))


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    with app_with(tmp_path) as test_client:
        yield test_client


@pytest.mark.parametrize("path", ["/dashboard/", "/dashboard/static/dashboard.js", "/dashboard/static/dashboard.css"])
def test_page_is_public_with_a_strict_csp(client: TestClient, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 200
    csp = response.headers["content-security-policy"]
    for directive in ("default-src 'self'", "script-src 'self'", "style-src 'self'", "frame-ancestors 'none'"):
        assert directive in csp
    assert "unsafe-inline" not in csp
    assert response.headers["x-frame-options"] == "DENY"


def test_page_has_no_inline_script_style_or_remote_source(client: TestClient) -> None:
    html = client.get("/dashboard/").text
    assert re.findall(r"<script(?![^>]*\bsrc=)[^>]*>", html) == []
    assert " style=" not in html
    assert "<style" not in html
    assert "http://" not in html
    assert "https://" not in html
    script = client.get("/dashboard/static/dashboard.js").text
    assert ".innerHTML" not in script
    assert "insertAdjacentHTML" not in script
    assert "eval(" not in script


def test_bare_path_redirects_relatively(client: TestClient) -> None:
    response = client.get("/dashboard", follow_redirects=False, headers={"Host": "evil.example"})
    assert response.status_code == 307
    assert response.headers["location"] == "dashboard/"  # never the client's Host
    assert client.get("/dashboard").status_code == 200  # followed, it is the page


@pytest.mark.parametrize(("method", "path"), API_ROUTES)
def test_api_without_key_is_401(client: TestClient, method: str, path: str) -> None:
    response = client.request(method, path, json={})
    assert response.status_code == 401
    assert response.json()["error"]["type"] == "authentication_error"
    assert "content-security-policy" in response.headers


def test_auth_info_is_public(client: TestClient) -> None:
    assert client.get("/dashboard/auth").json() == {"key_required": True}


def test_snapshot_shows_backends_models_roles_and_requests(client: TestClient) -> None:
    client.post(CHAT, json={"model": "m1", "messages": [{"role": "user", "content": "hi"}]}, headers=AUTH)
    snap = client.get("/dashboard/api/snapshot", headers=AUTH).json()
    assert [(b["name"], b["ok"], b["can_load"]) for b in snap["backends"]] == [
        ("local", True, True),
        ("remote", True, False),
    ]
    assert [(m["id"], m["loaded"]) for m in snap["models"]] == [("big", False), ("small", True), ("m1", None)]
    assert snap["roles"] == {"coder": ["m1", "*coder*"]}
    (event,) = snap["recent"]
    assert event["route"] == CHAT
    assert (event["requested_model"], event["model"], event["backend"], event["status"]) == ("m1", "m1", "remote", 200)
    assert event["output_tokens"] == 3
    assert event["latency_ms"] > 0
    assert event["preview"] is None
    assert snap["totals"]["requests"] == 1
    assert sum(p["requests_per_s"] for p in snap["series"]["points"]) > 0
    assert snap["model_actions"] == "v1"  # the app has the /v1/models/{id} load and unload routes


def test_prompts_are_kept_only_when_asked(tmp_path: Path) -> None:
    body = {"model": "m1", "messages": [{"role": "user", "content": "x" * 50}]}
    with app_with(tmp_path, MLX_DASHBOARD_CAPTURE_PROMPTS="1", MLX_DASHBOARD_PREVIEW_CHARS="10") as client:
        client.post(CHAT, json=body, headers=AUTH)
        (event,) = client.get("/dashboard/api/snapshot", headers=AUTH).json()["recent"]
    assert event["preview"] == "x" * 10


def test_events_ring_is_bounded(tmp_path: Path) -> None:
    with app_with(tmp_path, MLX_DASHBOARD_MAX_EVENTS="3") as client:
        for _ in range(5):
            client.post(CHAT, json={"model": "m1", "messages": [{"role": "user", "content": "hi"}]}, headers=AUTH)
        assert len(client.get("/dashboard/api/snapshot", headers=AUTH).json()["recent"]) == 3


def test_swarm_runs_appear_in_the_snapshot(client: TestClient) -> None:
    observer = client.app.state.gateway.observer  # type: ignore[attr-defined]
    candidates = (SwarmCandidate("m1", True, 0.5, score=0.9), SwarmCandidate("small", False, 0.2, "timeout"))
    observer.swarm_run(SwarmRun("r1", "best-of-n", candidates, "m1", "m1 answered the question"))
    (run,) = client.get("/dashboard/api/snapshot", headers=AUTH).json()["swarm_runs"]
    assert run["winner"] == "m1"
    assert run["rationale"] == "m1 answered the question"
    assert [c["model"] for c in run["candidates"]] == ["m1", "small"]


def test_config_masks_secrets(client: TestClient) -> None:
    config = client.get("/dashboard/api/config", headers=AUTH).json()
    assert KEY not in str(config)
    assert config["server"]["api_keys"] == ["**********"]


def test_preferences_are_stored_on_the_gateway(client: TestClient) -> None:
    patch = {
        "default_model": "m1",
        "swarm_presets": {"trio": {"models": ["m1", "small"], "strategy": "best-of-n", "judge": "m1"}},
        "active_swarm_preset": "trio",
    }
    response = client.post("/dashboard/api/preferences", json=patch, headers=AUTH)
    assert response.status_code == 200
    prefs = client.app.state.gateway.preferences  # type: ignore[attr-defined]
    assert prefs.default_model == "m1"
    assert prefs.active_swarm() is not None
    assert prefs.active_swarm().models == ["m1", "small"]
    assert client.get("/dashboard/api/preferences", headers=AUTH).json()["default_model"] == "m1"


@pytest.mark.parametrize(
    "patch",
    [{"nope": 1}, {"default_model": 5}, {"active_swarm_preset": "missing"}, {"swarm_presets": {"a": {"x": 1}}}],
)
def test_bad_preferences_are_400(client: TestClient, patch: dict[str, object]) -> None:
    response = client.post("/dashboard/api/preferences", json=patch, headers=AUTH)
    assert response.status_code == 400
    assert response.json()["error"]["type"] == "invalid_request_error"


def test_load_unknown_id_is_400_with_a_hint(client: TestClient) -> None:
    response = client.post("/dashboard/api/models/load", json={"model": "no-such"}, headers=AUTH)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "model_not_found"
    assert "GET /v1/models" in error["message"]
    assert "small" in error["message"]


def test_load_is_an_exact_match_only(client: TestClient) -> None:
    assert client.post("/dashboard/api/models/load", json={"model": "SMALL"}, headers=AUTH).status_code == 400


def test_load_on_a_backend_that_cannot_is_400(client: TestClient) -> None:
    response = client.post("/dashboard/api/models/load", json={"model": "m1"}, headers=AUTH)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "not_loadable"


@pytest.mark.parametrize("body", [{}, {"model": ""}, {"model": "a\nb"}, {"model": 3}])
def test_load_rejects_malformed_ids(client: TestClient, body: dict[str, object]) -> None:
    assert client.post("/dashboard/api/models/load", json=body, headers=AUTH).status_code == 400


def test_load_and_unload(client: TestClient) -> None:
    def loaded() -> dict[str, bool]:
        models = client.get("/dashboard/api/snapshot", headers=AUTH).json()["models"]
        return {m["id"]: m["loaded"] for m in models if m["backend"] == "local"}

    reply = client.post("/dashboard/api/models/load", json={"model": "big"}, headers=AUTH).json()
    assert reply == {"ok": True, "alias": "big", "model": "big", "loaded": True, "resident": ["small", "big"]}
    assert loaded() == {"big": True, "small": True}
    response = client.post("/dashboard/api/models/unload", json={"alias": "small"}, headers=AUTH)
    assert response.json() == {
        "ok": True, "alias": "small", "model": "small", "unloaded": True, "deferred": False, "resident": ["big"]
    }  # fmt: skip
    assert loaded() == {"big": True, "small": False}


def test_rescan_reports_what_changed(client: TestClient) -> None:
    client.get("/dashboard/api/snapshot", headers=AUTH)  # what the gateway knows now
    local = client.app.state.gateway.backends["local"]  # type: ignore[attr-defined]
    local.model_list[:] = [ModelInfo("small", "local", loaded=True), ModelInfo("new", "local", loaded=False)]
    reply = client.post("/dashboard/api/admin/rescan", headers=AUTH).json()
    assert reply["ok"] is True
    assert reply["diff"] == {"added": ["new"], "removed": ["big"], "unchanged": ["m1", "small"]}
    assert (reply["models"], reply["errors"]) == (3, {})


def test_preferences_take_the_original_body_and_answer_both_shapes(client: TestClient) -> None:
    body = {"default_model": "m1", "swarm_presets": {"baseline": ["m1", "small"]}}
    reply = client.post("/dashboard/api/preferences", json=body, headers=AUTH).json()
    assert reply["ok"] is True
    assert reply["preferences"] == body  # the original's reply: presets as the lists sent
    assert reply["swarm_presets"]["baseline"]["models"] == ["m1", "small"]  # ours, beside it
    assert client.app.state.gateway.preferences.swarm_presets["baseline"].strategy == "best-of-n"  # type: ignore[attr-defined]


def test_snapshot_and_config_carry_the_original_fields(client: TestClient) -> None:
    client.post(CHAT, json={"model": "m1", "messages": [{"role": "user", "content": "hi"}]}, headers=AUTH)
    snap = client.get("/dashboard/api/snapshot", headers=AUTH).json()
    assert snap["models_available"] == ["small", "big", "m1"]
    assert snap["models_loaded"] == ["small"]
    (event,) = snap["events"]
    assert (event["route_kind"], event["requested_model"], event["resolved_model"], event["status"]) == (
        "chat", "m1", "m1", "ok"
    )  # fmt: skip
    assert event["total_tokens"] == event["prompt_tokens"] + event["completion_tokens"] > 0
    assert event["preview"] == {}  # prompt capture is off: nothing of the prompt is kept
    assert isinstance(event["latency_ms"], int)
    assert snap["config"]["admission"]["inflight_total"] == 0
    assert snap["config"]["model_roles"]["coder"] == ["m1", "*coder*"]
    config = client.get("/dashboard/api/config", headers=AUTH).json()
    assert (config["dashboard_enabled"], config["max_events"], config["capture_prompts"]) == (True, 200, False)
    assert config["admission"]["queue_max_total"] == 128
    assert config["admission"]["queued_by_alias"] == {}
    assert config["server"]["api_keys"] == ["**********"]  # ours is still there


def test_dashboard_can_be_turned_off(tmp_path: Path) -> None:
    with app_with(tmp_path, MLX_DASHBOARD_ENABLED="0") as client:
        assert client.get("/dashboard/", headers=AUTH).status_code == 404
        assert client.get("/dashboard/").status_code == 401  # no longer public: an unknown path, key first
        assert client.get("/dashboard/api/snapshot", headers=AUTH).status_code == 404


def test_a_keyed_page_carries_no_data(client: TestClient) -> None:
    html = client.get("/dashboard/").text
    assert 'data-snapshot=""' in html
    assert "small" not in html


def test_a_keyless_page_carries_its_first_snapshot_as_text(tmp_path: Path) -> None:
    from html.parser import HTMLParser

    import orjson

    hostile = '"><script>alert(1)</script>'
    config = load(None, {"LATTICE_LEDGER_PATH": "off"})
    backend = FakeBackend("local", [ModelInfo(hostile, "local", loaded=True)])
    with TestClient(create_app(config, {"local": backend})) as keyless:
        html = keyless.get("/dashboard/").text

    class Body(HTMLParser):
        snapshot: str | None = None

        def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
            if tag == "body":
                self.snapshot = dict(attrs)["data-snapshot"]

    parser = Body()
    parser.feed(html)
    assert parser.snapshot
    data = orjson.loads(parser.snapshot)
    assert [m["id"] for m in data["models"]] == [hostile]
    assert data["totals"]["in_flight"] == 0
    assert "<script>alert" not in html  # escaped in the attribute, never markup
    assert re.findall(r"<script(?![^>]*\bsrc=)[^>]*>", html) == []


class _Unlistable(FakeBackend):
    async def models(self) -> list[ModelInfo]:
        from local_lattice.errors import BackendUnavailable

        raise BackendUnavailable("listing failed: " + "x" * 400, backend=self.name)


def test_error_texts_are_cut_to_max_error_chars(tmp_path: Path) -> None:
    config = load(
        None, {"MIDDLE_LAYER_API_KEY": KEY, "LATTICE_LEDGER_PATH": "off", "MLX_DASHBOARD_MAX_ERROR_CHARS": "40"}
    )
    backends = {"remote": FakeBackend.with_models("remote", "m1"), "broken": _Unlistable("broken")}
    with TestClient(create_app(config, backends)) as client:
        snap = client.get("/dashboard/api/snapshot", headers=AUTH).json()
    (broken,) = [b for b in snap["backends"] if b["name"] == "broken"]
    assert broken["error"].startswith("listing failed: xx")
    assert len(broken["error"]) == 40
