"""``LMStudioBackend`` against an LM Studio that misbehaves on its own model list: a passing failure
(5xx, garbage) falls back to ``/v1/models`` for that listing only; an answer that says there is no
``/api/v0`` (404, or LM Studio's 200 ``{"error": "Unexpected endpoint"}``) stops asking for good. A
real server on a loopback socket whose ``/api/v0/models`` answers from a script."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from aiohttp import web

from local_lattice.backends.lmstudio import LMStudioBackend
from local_lattice.config import BackendConfig
from tests.support.upstream import serve_in_thread

NATIVE = {"object": "list", "data": [{"id": "m", "type": "vlm", "state": "loaded", "loaded_context_length": 4096,
                                      "publisher": "acme"}]}  # fmt: skip


def studio(script: list[web.Response]) -> Iterator[tuple[str, list[str]]]:
    seen: list[str] = []

    async def native(request: web.Request) -> web.Response:
        seen.append("v0")
        return script.pop(0) if script else web.json_response(NATIVE)

    async def openai(request: web.Request) -> web.Response:
        seen.append("v1")
        return web.json_response({"object": "list", "data": [{"id": "m", "owned_by": "organization_owner"}]})

    app = web.Application()
    app.router.add_get("/api/v0/models", native)
    app.router.add_get("/v1/models", openai)
    with serve_in_thread(app) as root:
        yield root, seen


@pytest.fixture
def flaky() -> Iterator[tuple[str, list[str]]]:
    yield from studio([web.Response(status=500, text="boom"), web.Response(text="<html>not json</html>")])


async def test_a_passing_failure_falls_back_once(flaky: tuple[str, list[str]]) -> None:
    root, seen = flaky
    backend = LMStudioBackend(BackendConfig(name="lms", type="lmstudio", url=root + "/v1", model_list_ttl=0))
    try:
        first = await backend.fetch_models()
        second = await backend.fetch_models()
        third = await backend.fetch_models()
    finally:
        await backend.aclose()
    assert [(m.id, m.loaded) for m in first] == [("m", None)] == [(m.id, m.loaded) for m in second]
    assert first[0].listing == {"owned_by": "organization_owner"}
    (model,) = third
    assert (model.loaded, model.context_length, model.supports_vision, model.kind) == (True, 4096, True, "chat")
    assert (model.listing or {}).get("publisher") == "acme"
    assert seen == ["v0", "v1", "v0", "v1", "v0"]
    assert backend.native_api


@pytest.mark.parametrize(
    "answer",
    [
        web.json_response({"error": "Unexpected endpoint or method. (GET /api/v0/models)"}),
        web.json_response({"error": "not found"}, status=404),
    ],
)
async def test_no_native_list_stops_asking(answer: web.Response) -> None:
    for root, seen in studio([answer]):
        backend = LMStudioBackend(BackendConfig(name="lms", type="lmstudio", url=root + "/v1"))
        try:
            await backend.fetch_models()
            await backend.fetch_models()
        finally:
            await backend.aclose()
        assert seen == ["v0", "v1", "v1"]
        assert not backend.native_api
