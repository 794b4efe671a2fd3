"""``FrontDoor`` alone around a tiny ASGI app: the key's name in the scope, bugs below it."""

from __future__ import annotations

from starlette.testclient import TestClient
from starlette.types import Receive, Scope, Send

from local_lattice.api.middleware import FrontDoor
from local_lattice.security.keys import KeyRing

KEYS = KeyRing([("alice", "alice-key-123456"), ("bob", "bob-key-1234567")])


async def echo_key_name(scope: Scope, receive: Receive, send: Send) -> None:
    body = scope["state"]["key_name"].encode()
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": body})


async def broken(scope: Scope, receive: Receive, send: Send) -> None:
    raise RuntimeError("bug with alice-key-123456 in it")


def test_the_matching_key_name_is_in_the_scope() -> None:
    client = TestClient(FrontDoor(echo_key_name, keys=KEYS, max_request_bytes=1024))
    assert client.get("/x", headers={"X-API-Key": "bob-key-1234567"}).text == "bob"
    assert client.get("/x", headers={"Authorization": "Bearer alice-key-123456"}).text == "alice"
    assert client.get("/healthz").text == "anonymous"
    # A public path refuses no one, but a valid key is still recognised there.
    assert client.get("/healthz", headers={"X-API-Key": "bob-key-1234567"}).text == "bob"
    assert client.get("/healthz", headers={"X-API-Key": "wrong"}).text == "anonymous"
    assert client.get("/x", headers={"X-API-Key": "alice-key-123456", "Authorization": "Basic eDp5"}).status_code == 401


def test_a_bug_below_the_handlers_is_an_envelope_with_every_header() -> None:
    client = TestClient(FrontDoor(broken, keys=KEYS, max_request_bytes=1024), raise_server_exceptions=False)
    response = client.get("/x", headers={"X-API-Key": "alice-key-123456", "X-Request-Id": "r-1"})
    assert response.status_code == 500
    assert response.json()["error"]["type"] == "internal_error"
    assert "alice-key" not in response.text
    assert response.headers["x-request-id"] == "r-1"
    assert response.headers["x-frame-options"] == "DENY"
