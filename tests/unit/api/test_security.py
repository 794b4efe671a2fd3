"""The front door and guard over every route of the app (in-process, FakeBackends).

Routes are enumerated from ``app.routes``, so a route added anywhere is covered by these tests.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.routing import BaseRoute, Mount, Route
from starlette.testclient import TestClient

from local_lattice.api.app import create_app, route_specs
from local_lattice.api.route_table import public_paths
from local_lattice.backends.fake import FakeBackend
from local_lattice.config import Config, LimitsConfig, NamedKey, RateLimits, ServerConfig
from local_lattice.observability.logs import RequestIdFilter
from local_lattice.security.redact import LogFilter, Redactor

# The only routes anyone may call without a key. Adding one is a security decision: change it here.
# The dashboard's page and static files are public; its /dashboard/api/* data is not.
EXPECTED_PUBLIC = {
    "/healthz",
    "/openapi.json",
    "/dashboard",  # a redirect to the page
    "/dashboard/",
    "/dashboard/auth",
    "/dashboard/static/dashboard.css",
    "/dashboard/static/dashboard.js",
}
KEY = "alice-key-0123456789"
HEADERS = {"X-API-Key": KEY}
SECURITY = {
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
    "cross-origin-resource-policy": "same-origin",
}
MESSAGES = [{"role": "user", "content": "hi"}]


def make_config(**limits: Any) -> Config:
    server = ServerConfig(api_keys=[NamedKey(name="alice", key=KEY)], max_request_bytes=4096)  # type: ignore[list-item]
    return Config(server=server, limits=LimitsConfig(**limits))


def client_for(config: Config) -> TestClient:
    return TestClient(create_app(config, {"f": FakeBackend.with_models("f", "m1", reply="one two three")}))


@pytest.fixture
def client() -> Iterator[TestClient]:
    with client_for(make_config()) as test_client:
        yield test_client


def endpoints(routes: list[BaseRoute], prefix: str = "") -> list[tuple[str, str]]:
    """Every (method, concrete path) the app serves, path parameters filled with a plain word."""
    found = []
    for route in routes:
        if isinstance(route, Route):
            path = prefix + route.path_format.replace("{", "").replace("}", "")
            found.extend((method, path) for method in sorted(route.methods or {"GET"}) if method != "HEAD")
        elif isinstance(route, Mount):
            found.extend(endpoints(route.routes, prefix + route.path) or [("GET", prefix + route.path + "/x")])
    return found


def all_endpoints() -> list[tuple[str, str]]:
    app = create_app(make_config(), {})
    assert isinstance(app, Starlette)
    return endpoints(app.routes)


def assert_hardened(response: Any) -> None:
    for name, value in SECURITY.items():
        assert response.headers[name] == value, (name, response.status_code)
    assert response.headers["x-request-id"]


def assert_envelope(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    error: dict[str, Any] = response.json()["error"]
    assert {"message", "type", "code"} <= error.keys()
    assert_hardened(response)
    return error


def test_public_routes_are_exactly_the_expected_ones() -> None:
    assert public_paths(route_specs(make_config())) == EXPECTED_PUBLIC


@pytest.mark.parametrize(("method", "path"), all_endpoints())
@pytest.mark.parametrize(
    "headers",
    [{}, {"X-API-Key": "wrong"}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {KEY}"}],
    ids=["none", "wrong-x-api-key", "wrong-bearer", "basic"],
)
def test_every_private_route_refuses_a_missing_or_wrong_key(
    client: TestClient, method: str, path: str, headers: dict[str, str]
) -> None:
    response = client.request(method, path, headers=headers, json={})
    if path in EXPECTED_PUBLIC:
        assert response.status_code < 500
        assert_hardened(response)
        return
    error = assert_envelope(response, 401)
    assert error["type"] == "authentication_error"


@pytest.mark.parametrize(("method", "path"), all_endpoints())
def test_every_route_with_the_key_is_hardened_and_never_a_server_error(
    client: TestClient, method: str, path: str
) -> None:
    for body in ({}, {"model": "m1", "messages": MESSAGES, "prompt": "x", "input": "x"}):
        response = client.request(method, path, headers=HEADERS, json=body)
        assert response.status_code < 500, response.text
        assert_hardened(response)


def test_openapi_covers_every_route(client: TestClient) -> None:
    document = client.get("/openapi.json").json()
    app = create_app(make_config(), {})
    templates = [route.path_format for route in app.routes if isinstance(route, Route)]
    for template in templates:
        assert template in document["paths"], f"{template} is missing from /openapi.json"
    for method, path in all_endpoints():
        template = next((t for t in templates if t.replace("{", "").replace("}", "") == path), path)
        operations = document["paths"].get(template, {})
        assert method.lower() in operations, f"{method} {path} is missing from /openapi.json"
    assert document["components"]["securitySchemes"].keys() == {"ApiKey", "Bearer"}
    chat = document["components"]["schemas"]["ChatCompletionRequest"]["properties"]["max_tokens"]
    assert {"type": "integer", "minimum": 1, "maximum": 1_048_576} in chat["anyOf"]


@pytest.mark.parametrize(
    ("method", "path", "kwargs", "status"),
    [
        ("GET", "/nowhere", {}, 404),
        ("GET", "/v1/chat/completions", {}, 405),
        ("DELETE", "/v1/models", {}, 405),
        ("POST", "/v1/chat/completions", {"content": b"{" + b" " * 5000 + b"}"}, 413),
        ("POST", "/v1/chat/completions", {"content": b"{}"}, 400),
        ("POST", "/v1/embeddings", {"json": {"model": "nope", "input": "x"}}, 404),  # no embedding model
    ],
)
def test_errors_carry_every_security_header(
    client: TestClient, method: str, path: str, kwargs: dict[str, Any], status: int
) -> None:
    assert_envelope(client.request(method, path, headers=HEADERS, **kwargs), status)


def test_key_in_the_query_string_is_refused_with_a_reason(client: TestClient) -> None:
    for query in ("api_key", "key", "access_token"):
        error = assert_envelope(client.get(f"/v1/models?{query}={KEY}", headers=HEADERS), 401)
        assert error["code"] == "api_key_in_query"
        assert "X-API-Key" in error["message"]
        assert KEY not in error["message"]
    assert client.get("/v1/models?limit=3", headers=HEADERS).status_code == 200


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        (b'{"model":"m1","messages":[{"role":"user","content":"\xff\xfe"}]}', "UTF-8"),
        (b'{"model":"m1","messages":[],"temperature":NaN}', "JSON"),
        (b'{"model":"m1","messages":[],"temperature":Infinity}', "JSON"),
        (b'{"model":"m1","temperature":1e999}', "JSON"),
        (b'{"model":"m1","x":' + b"[" * 200 + b"]" * 200 + b"}", "max_json_depth"),
        (b"[" * 5000 + b"]" * 5000, "JSON"),
    ],
)
def test_hostile_bodies_are_400(content: bytes, needle: str) -> None:
    config = make_config()
    config.server.max_request_bytes = 1 << 20
    with client_for(config) as client:
        error = assert_envelope(client.post("/v1/chat/completions", content=content, headers=HEADERS), 400)
        assert needle in error["message"]


@pytest.mark.parametrize(
    ("extra", "code"),
    [
        ({"max_tokens": 10**9}, "max_tokens_limit"),
        ({"max_tokens": 10**30}, "max_tokens_limit"),
        ({"n": 10**6}, "max_n"),
        ({"messages": MESSAGES * 2000}, "max_messages"),
    ],
)
def test_request_limits_are_400_naming_the_limit(client: TestClient, extra: dict[str, Any], code: str) -> None:
    config = make_config()
    config.server.max_request_bytes = 1 << 20
    with client_for(config) as big:
        body = {"model": "m1", "messages": MESSAGES, **extra}
        error = assert_envelope(big.post("/v1/chat/completions", json=body, headers=HEADERS), 400)
        assert error["code"] == code
        assert code in error["message"]


def test_rate_limit_is_429_with_truthful_retry_after_and_names_the_key() -> None:
    config = make_config(per_key=RateLimits(requests_per_minute=2))
    with client_for(config) as client:
        for _ in range(2):
            assert client.get("/v1/models", headers=HEADERS).status_code == 200
        response = client.get("/v1/models", headers=HEADERS)
        error = assert_envelope(response, 429)
        assert (error["type"], error["code"]) == ("rate_limit_error", "key_requests_per_minute")
        assert "'alice'" in error["message"]
        assert 29 <= int(response.headers["retry-after"]) <= 30  # one request per 30 s
        assert client.get("/healthz").status_code == 200  # public routes are not limited


def test_token_limit_charges_the_estimate_and_refunds_real_usage() -> None:
    config = make_config(per_key=RateLimits(tokens_per_minute=600), estimated_completion_tokens=500)
    with client_for(config) as client:
        body = {"model": "m1", "messages": MESSAGES}
        for _ in range(5):  # each estimated at 501 but really 6 tokens: the refund lets the next one in
            assert client.post("/v1/chat/completions", json=body, headers=HEADERS).status_code == 200
        stream = {**body, "stream": True, "stream_options": {"include_usage": True}}
        assert client.post("/v1/chat/completions", json=stream, headers=HEADERS).status_code == 200
        response = client.post("/v1/chat/completions", json={**body, "max_tokens": 590}, headers=HEADERS)
        error = assert_envelope(response, 429)
        assert error["code"] == "key_tokens_per_minute"


def test_cors_preflight_and_headers_only_for_listed_origins() -> None:
    config = make_config()
    config.server.cors_origins = ["https://app.example"]
    with client_for(config) as client:
        pre = {"Origin": "https://app.example", "Access-Control-Request-Method": "POST"}
        response = client.options("/v1/chat/completions", headers=pre)
        assert response.status_code == 204
        assert response.headers["access-control-allow-origin"] == "https://app.example"
        assert "X-API-Key" in response.headers["access-control-allow-headers"]
        assert_hardened(response)
        evil = client.options("/v1/chat/completions", headers={**pre, "Origin": "https://evil.example"})
        assert_envelope(evil, 400)
        assert "access-control-allow-origin" not in evil.headers
        denied = client.get("/v1/models", headers={"Origin": "https://app.example"})
        assert_envelope(denied, 401)
        assert denied.headers["access-control-allow-origin"] == "https://app.example"
        assert "access-control-allow-origin" not in client.get("/healthz", headers={"Origin": "https://x"}).headers
    with client_for(make_config()) as client:  # CORS off: a preflight is just an unauthenticated request
        pre = {"Origin": "https://app.example", "Access-Control-Request-Method": "POST"}
        response = client.options("/v1/chat/completions", headers=pre)
        assert "access-control-allow-origin" not in response.headers
        assert response.status_code == 401


def test_every_log_line_carries_the_request_id(client: TestClient, caplog: pytest.LogCaptureFixture) -> None:
    filters = [RequestIdFilter(), LogFilter(Redactor([KEY]))]  # what the CLI installs
    for log_filter in filters:
        caplog.handler.addFilter(log_filter)
    try:
        with caplog.at_level(logging.INFO):
            body = {"model": "m1", "messages": MESSAGES}
            headers = {**HEADERS, "X-Request-Id": "trace-77"}
            assert client.post("/v1/chat/completions", json=body, headers=headers).status_code == 200
            deadline = time.monotonic() + 2  # the request's line is written up to 50 ms after it ends
            while not any(r.name == "lattice.request" for r in caplog.records) and time.monotonic() < deadline:
                time.sleep(0.01)
    finally:
        for log_filter in filters:
            caplog.handler.removeFilter(log_filter)
    lines = [r for r in caplog.records if r.name == "lattice.request"]
    assert lines
    assert all(r.request_id == "trace-77" for r in lines)  # type: ignore[attr-defined]
