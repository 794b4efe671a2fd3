"""The smaller holes, against the real gateway process: where a model's files live stays out of
what clients and the key-free ``/healthz`` see; ``/dashboard`` redirects without naming a host;
and the document (``/openapi.json``) and the code agree on ``/v1/resolve``, ``/swarm/vote``'s
``models``, the dashboard's load call and Messages content blocks."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.hostile_upstream import hostile_upstream
from tests.support.lifecycle import wait_idle
from tests.support.procs import RunningProcess
from tests.support.servers import gateway_process

pytestmark = pytest.mark.slow

KEY = "spec-key-0123456789"
AUTH = {"Authorization": f"Bearer {KEY}"}
CHAT = [{"role": "user", "content": "hi"}]


@pytest.fixture(scope="module")
def secret_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("home-of-alice") / "private-models"
    folder.mkdir()
    (folder / "broken.gguf").write_bytes(b"GGUF" + b"\x00" * 4096)  # a cut-short file llama.cpp refuses
    return folder


@pytest.fixture(scope="module")
def gateway(secret_dir: Path) -> Iterator[RunningProcess]:
    with hostile_upstream(["ok-a", "ok-b"]) as upstream:
        toml = f"""
[server]
api_keys = ["{KEY}"]

[[backends]]
name = "hostile"
type = "openai"
url = "{upstream.url}"

[[backends]]
name = "local"
type = "llamacpp"
discover = false
model_files = {{ broken = "{secret_dir / "broken.gguf"}" }}
"""
        with gateway_process(toml) as proc:
            yield proc


def test_a_failed_load_names_the_model_not_its_files(gateway: RunningProcess, secret_dir: Path) -> None:
    answer = httpx.post(
        gateway.url + "/v1/chat/completions", json={"model": "broken", "messages": CHAT}, headers=AUTH, timeout=60
    )
    assert answer.status_code == 503, answer.text
    message = answer.json()["error"]["message"]
    assert "broken" in message
    assert str(secret_dir) not in message
    assert "home-of-alice" not in message
    public = httpx.get(gateway.url + "/healthz", timeout=10)  # key-free: the status, nothing of the backends
    assert "home-of-alice" not in public.text
    assert "broken" not in public.text
    health = httpx.get(gateway.url + "/healthz", headers=AUTH, timeout=10)
    errors = health.json()["backends"]["local"]["load_errors"]
    assert "broken" in errors
    assert "home-of-alice" not in health.text
    wait_idle(gateway.url, AUTH)
    assert str(secret_dir) in gateway.log()  # the operator still finds the file in the log


def test_the_dashboard_redirect_names_no_host(gateway: RunningProcess) -> None:
    answer = httpx.get(gateway.url + "/dashboard", headers={"Host": "evil.example"}, timeout=10)
    assert answer.status_code == 307
    assert answer.headers["location"] == "dashboard/"
    for path in ("/healthz/", "/v1/models/"):  # no slash redirects built from the Host header either
        other = httpx.get(gateway.url + path, headers={"Host": "evil.example", **AUTH}, timeout=10)
        assert "evil.example" not in other.headers.get("location", ""), path
    page = httpx.get(gateway.url + "/dashboard", follow_redirects=True, timeout=10)
    assert page.status_code == 200
    assert page.url.path == "/dashboard/"


@pytest.mark.parametrize(
    ("field", "value"), [("n", -5), ("temperature", "hot"), ("top_p", 3), ("endpoint", "images"), ("model", "a\nb")]
)
def test_resolve_refuses_what_the_document_refuses(gateway: RunningProcess, field: str, value: object) -> None:
    body = {"model": "ok-a", "messages": CHAT, field: value}
    answer = httpx.post(gateway.url + "/v1/resolve", json=body, headers=AUTH, timeout=10)
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"]["param"] == field
    schema = httpx.get(gateway.url + "/openapi.json", timeout=10).json()
    operation = schema["paths"]["/v1/resolve"]["post"]
    assert operation["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith("/ResolveRequest")


def test_resolve_takes_each_endpoints_shape(gateway: RunningProcess) -> None:
    for body, endpoint in (
        ({"model": "ok-a", "messages": CHAT}, "chat"),
        ({"model": "ok-a", "prompt": "hi"}, "completions"),
        ({"model": "ok-a", "messages": CHAT, "n": 2, "temperature": 0.5}, "chat"),
    ):
        answer = httpx.post(gateway.url + "/v1/resolve", json=body, headers=AUTH, timeout=10)
        assert answer.status_code == 200, answer.text
        assert answer.json()["endpoint"] == endpoint


@pytest.mark.parametrize("models", ["ok-a", "ok-a,ok-b", " ok-a , ok-b ", "auto"])
def test_vote_takes_a_models_string(gateway: RunningProcess, models: str) -> None:
    body = {"models": models, "messages": CHAT, "strategy": "longest"}
    answer = httpx.post(gateway.url + "/swarm/vote", json=body, headers=AUTH, timeout=30)
    assert answer.status_code == 200, answer.text


@pytest.mark.parametrize("models", ["", " , ", [], [" "]])
def test_vote_refuses_models_naming_nothing_as_the_document_does(gateway: RunningProcess, models: object) -> None:
    body = {"models": models, "messages": CHAT}
    answer = httpx.post(gateway.url + "/swarm/vote", json=body, headers=AUTH, timeout=30)
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"]["param"].startswith("models")
    schemas = httpx.get(gateway.url + "/openapi.json", timeout=10).json()["components"]["schemas"]
    strings = [alt for alt in schemas["SwarmRequest"]["properties"]["models"]["anyOf"] if alt.get("type") == "string"]
    assert strings == [{"type": "string", "pattern": "[^\\s,]", "description": strings[0]["description"]}]


def test_the_dashboard_load_call_documents_its_body(gateway: RunningProcess) -> None:
    operation = httpx.get(gateway.url + "/openapi.json", timeout=10).json()["paths"]["/dashboard/api/models/load"]
    assert operation["post"]["requestBody"]["required"] is True
    for content in (b"", b"{}", b'{"model": null}'):
        answer = httpx.post(gateway.url + "/dashboard/api/models/load", content=content, headers=AUTH, timeout=10)
        assert answer.status_code == 400, answer.text
        assert answer.json()["error"]["param"] == "model"


def test_messages_content_blocks_need_a_type_as_documented(gateway: RunningProcess) -> None:
    document = httpx.get(gateway.url + "/openapi.json", timeout=10).json()["components"]["schemas"]
    assert "type" in document["TextBlock"]["required"]
    untyped = {"model": "ok-a", "max_tokens": 8, "messages": [{"role": "user", "content": [{"text": "hi"}]}]}
    answer = httpx.post(gateway.url + "/v1/messages", json=untyped, headers=AUTH, timeout=10)
    assert answer.status_code == 400
    assert answer.json()["type"] == "error"
    typed = {
        "model": "ok-a",
        "max_tokens": 8,
        "messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}],
    }
    assert httpx.post(gateway.url + "/v1/messages", json=typed, headers=AUTH, timeout=10).status_code == 200
    wait_idle(gateway.url, AUTH)
