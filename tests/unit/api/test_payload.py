"""JSON answers: the body as given, its type and length, and the route's own headers."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.testclient import TestClient

from local_lattice.api.payload import JSONBytes, json_response


async def answer(request: Request) -> Response:
    if request.query_params.get("kind") == "bytes":
        return JSONBytes(b'{"ok":true}', headers={"X-Model-Routed-To": "b/m", "Retry-After": "2"})
    return json_response({"error": {"message": "no"}}, status=429, headers={"Retry-After": "3"})


def test_json_bytes_and_json_response_send_what_they_are_given() -> None:
    client = TestClient(Starlette(routes=[Route("/", answer)]))
    raw = client.get("/?kind=bytes")
    assert raw.status_code == 200
    assert raw.content == b'{"ok":true}'
    assert raw.headers["content-type"] == "application/json"
    assert raw.headers["content-length"] == "11"
    assert raw.headers["x-model-routed-to"] == "b/m"
    assert raw.headers["retry-after"] == "2"
    rendered = client.get("/")
    assert rendered.status_code == 429
    assert rendered.json() == {"error": {"message": "no"}}
    assert rendered.headers["retry-after"] == "3"
    assert rendered.headers.get_list("content-type") == ["application/json"]
