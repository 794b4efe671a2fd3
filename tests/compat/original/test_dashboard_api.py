"""The dashboard API as the original's page and scripts called it, black-box: load and unload of a
real in-process model, a rescan of a real model folder, preferences in its body, events in its rows."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.compat.original.conftest import AUTH, KEY, MODEL, client_for, settled
from tests.support.models import smollm2_path
from tests.support.procs import RunningProcess
from tests.support.servers import gateway_process

pytestmark = pytest.mark.slow


def test_load_and_unload_answer_ok_alias_and_resident(engine: httpx.Client) -> None:
    loaded = engine.post("/dashboard/api/models/load", json={"alias": MODEL})
    assert loaded.status_code == 200, loaded.text
    assert loaded.json() == {
        "ok": True, "alias": MODEL, "model": MODEL, "loaded": True, "resident": [MODEL]
    }  # fmt: skip
    assert engine.get("/dashboard/api/snapshot").json()["models_loaded"] == [MODEL]
    unloaded = engine.post("/dashboard/api/models/unload", json={"model": MODEL})
    assert unloaded.status_code == 200, unloaded.text
    assert (unloaded.json()["ok"], unloaded.json()["alias"], unloaded.json()["resident"]) == (True, MODEL, [])
    assert engine.get("/dashboard/api/snapshot").json()["memory"]["count"] == 0


@pytest.mark.parametrize("alias", ["no-such-model", MODEL.upper(), "../../etc/passwd", "a\nb"])
def test_load_takes_only_a_discovered_id(engine: httpx.Client, alias: str) -> None:
    response = engine.post("/dashboard/api/models/load", json={"alias": alias})
    assert response.status_code == 400
    assert response.json()["error"]["type"] == "invalid_request_error"
    assert engine.get("/dashboard/api/snapshot").json()["models_loaded"] == []


def test_preferences_in_the_original_body(engine: httpx.Client) -> None:
    body = {"default_model": MODEL, "swarm_presets": {"pair": [MODEL, "role:fast"], "solo": [MODEL]}}
    reply = engine.post("/dashboard/api/preferences", json=body).json()
    assert (reply["ok"], reply["preferences"]) == (True, body)
    assert engine.get("/dashboard/api/snapshot").json()["preferences"]["swarm_presets"]["pair"]["models"] == [
        MODEL, "role:fast"
    ]  # fmt: skip
    bad = engine.post("/dashboard/api/preferences", json={"swarm_presets": {"x": "not a list"}})
    assert bad.status_code == 400
    assert engine.post("/dashboard/api/preferences", json={"default_model": "", "swarm_presets": {}}).json()[
        "preferences"
    ] == {"default_model": None, "swarm_presets": {}}


def test_events_are_the_originals_rows_with_errors_named(scripted: httpx.Client) -> None:
    ask = [{"role": "user", "content": "a secret prompt"}]
    scripted.post("/v1/chat/completions", json={"model": "fast-model", "messages": ask})
    scripted.post("/v1/chat/completions", json={"model": "boom-500", "messages": ask})
    with scripted.stream("POST", "/v1/chat/completions", json={"model": "echo", "messages": ask, "stream": True}) as r:
        r.read()
    events = scripted.get("/dashboard/api/snapshot").json()["events"]
    rows = {e["resolved_model"]: e for e in events}
    assert (rows["fast-model"]["status"], rows["fast-model"]["route_kind"], rows["fast-model"]["error"]) == (
        "ok", "chat", None
    )  # fmt: skip
    assert (rows["boom-500"]["status"], rows["boom-500"]["backend"]) == ("error", "upstream")
    assert rows["boom-500"]["error"]
    assert (rows["echo"]["route_kind"], rows["echo"]["stream"]) == ("chat_stream", True)
    assert "a secret prompt" not in str(events)  # prompt capture is off
    assert settled(scripted) == {"inflight": 0, "queued": 0}


@pytest.fixture
def folder_gateway(tmp_path: Path) -> Iterator[tuple[RunningProcess, Path]]:
    """A gateway whose in-process engine serves whatever GGUF files a folder holds."""
    folder = tmp_path / "models"
    folder.mkdir()
    os.symlink(smollm2_path(), folder / "first.gguf")
    toml = (
        f'[server]\napi_keys = ["{KEY}"]\n\n[[backends]]\nname = "mlx"\ntype = "llamacpp"\ndiscover = false\n'
        f'model_paths = ["{folder}"]\n'
    )
    with gateway_process(toml, env={"HOME": str(tmp_path)}) as proc:
        yield proc, folder


def test_rescan_reports_models_added_and_removed_on_disk(folder_gateway: tuple[RunningProcess, Path]) -> None:
    gateway, folder = folder_gateway
    with client_for(gateway) as client:
        assert [m["id"] for m in client.get("/v1/models").json()["data"]] == ["first"]
        os.symlink(smollm2_path(), folder / "second.gguf")
        (folder / "first.gguf").unlink()
        reply = client.post("/dashboard/api/admin/rescan").json()
        assert reply["ok"] is True
        assert reply["diff"] == {"added": ["second"], "removed": ["first"], "unchanged": []}
        assert (reply["models"], reply["errors"]) == (1, {})
        assert client.post("/dashboard/api/admin/rescan", headers=AUTH).json()["diff"]["added"] == []
        assert [m["id"] for m in client.get("/v1/models").json()["data"]] == ["second"]
