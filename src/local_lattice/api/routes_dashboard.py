"""Dashboard routes: the public page and static files, and the key-protected JSON API the page polls.
On a gateway without keys the page itself carries the first snapshot, so it paints with data.

The page is three files read once from the package; names are looked up in a fixed table, never
joined onto a filesystem path. The API keeps the original product's routes and answers with its
fields beside ours (``{ok, preferences}``, ``{ok, alias, resident}``, ``{ok, diff}``). Errors are
raised as ``LatticeError`` and rendered by the app's one exception handler.
"""

from __future__ import annotations

import re
from html import escape as html_escape
from importlib import resources
from typing import Annotated, Any

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Match

from local_lattice import original_state
from local_lattice.api.route_table import RouteSpec
from local_lattice.backends.base import ModelLoader
from local_lattice.dashboard import snapshot
from local_lattice.errors import InvalidRequest
from local_lattice.failover import ModelListCache
from local_lattice.gateway import Gateway

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)
PREFIX = "/dashboard"
PUBLIC_PREFIX = "/dashboard"
PROTECTED_PREFIX = "/dashboard/api/"
PAGE_HEADERS = {"Cache-Control": "no-cache"}  # the CSP is added by the front door to every /dashboard response
STATIC = {
    "index.html": "text/html; charset=utf-8",
    "dashboard.css": "text/css; charset=utf-8",
    "dashboard.js": "text/javascript; charset=utf-8",
}
_MODEL_ID_PATTERN = r"^[^\x00-\x1f\x7f]{1,256}$"
_MODEL_ID = re.compile(_MODEL_ID_PATTERN)
ModelId = Annotated[str, Field(pattern=_MODEL_ID_PATTERN)]


class ModelAction(BaseModel):
    """The body of the load and unload calls: an exact model id (``alias`` is the original's name)."""

    model_config = ConfigDict(
        extra="allow",
        json_schema_extra={
            "anyOf": [{"required": [name], "properties": {name: {"type": "string"}}} for name in ("model", "alias")]
        },
    )

    model: ModelId | None = Field(None, description="An exact id from GET /v1/models.")
    alias: ModelId | None = Field(None, description="The same, under the original's name.")


def _files() -> dict[str, bytes]:
    root = resources.files("local_lattice.dashboard") / "static"
    return {name: (root / name).read_bytes() for name in STATIC}


def _json(data: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(data), status_code=status, media_type="application/json", headers=PAGE_HEADERS)


def _gateway(request: Request) -> Gateway:
    gateway: Gateway = request.app.state.gateway
    return gateway


async def _body(request: Request) -> dict[str, Any]:
    try:
        data = orjson.loads(await request.body() or b"{}")
    except orjson.JSONDecodeError as exc:
        raise InvalidRequest(f"request body is not valid JSON: {exc}", code="invalid_json") from None
    if not isinstance(data, dict):
        raise InvalidRequest("request body must be a JSON object", code="invalid_json")
    return data


def _has_route(request: Request, method: str, path: str) -> bool:
    scope = {"type": "http", "method": method, "path": path, "root_path": ""}
    return any(route.matches(scope)[0] is Match.FULL for route in request.app.router.routes)


def model_actions(request: Request) -> str:
    """Which API the page's load/unload buttons call: the OpenAI-style model routes when the app
    has them, else the dashboard's own."""
    probe = "/v1/models/probe"
    if _has_route(request, "POST", probe + "/load") and _has_route(request, "DELETE", probe):
        return "v1"
    return "dashboard"


async def auth_info(request: Request) -> Response:
    """Public: whether the API needs a key, so the page asks for one instead of probing with a 401."""
    return _json({"key_required": bool(_gateway(request).config.server.named_keys())})


async def _snapshot(request: Request) -> dict[str, Any]:
    data = await snapshot.build(_gateway(request))
    data["model_actions"] = model_actions(request)
    return data


async def api_snapshot(request: Request) -> Response:
    return _json(await _snapshot(request))


async def page(request: Request, html: bytes) -> Response:
    """The page. On a gateway without keys its data is public anyway, so the snapshot rides along
    (an HTML-escaped attribute, never a script: the CSP stays strict) and the first paint shows it;
    with keys the page carries none and fetches it with the tab's key."""
    if not _gateway(request).config.server.named_keys():
        data = html_escape(orjson.dumps(await _snapshot(request)).decode(), quote=True)
        html = html.replace(b'data-snapshot=""', f'data-snapshot="{data}"'.encode(), 1)
    return Response(html, media_type=STATIC["index.html"], headers=PAGE_HEADERS)


async def api_config(request: Request) -> Response:
    """The running configuration with every secret masked, and the original's summary of it beside
    (its ``admission`` fields join ours in the one ``admission`` object)."""
    gateway = _gateway(request)
    ours = gateway.config.model_dump(mode="json")
    summary = original_state.config_summary(gateway)
    dash = gateway.config.dashboard
    public = {
        "dashboard_enabled": dash.enabled,
        "preview_chars": dash.preview_chars,
        "max_events": dash.max_events,
        "capture_prompts": dash.capture_prompts,
        "max_prompt_chars": dash.preview_chars,  # only the preview is ever kept
        "note": "Chain-of-thought is not exposed.",
    }
    return _json({**public, **summary, **ours, "admission": {**ours["admission"], **summary["admission"]}})


def _preferences_reply(gateway: Gateway) -> Response:
    """Ours (``default_model``, ``swarm_presets`` as objects …) and the original's ``{ok, preferences}``."""
    return _json({"ok": True, "preferences": gateway.preferences.original(), **gateway.preferences.model_dump()})


async def api_preferences(request: Request) -> Response:
    gateway = _gateway(request)
    if request.method == "POST":
        patch = await _body(request)
        try:
            gateway.set_preferences(gateway.preferences.merged(patch))
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "body"
            raise InvalidRequest(f"{where}: {first['msg']}", param=where, code="invalid_field") from None
        except ValueError as exc:
            raise InvalidRequest(str(exc), code="invalid_field") from None
    return _preferences_reply(gateway)


async def _loader_for(gateway: Gateway, data: dict[str, Any]) -> tuple[ModelLoader, str, str]:
    """The backend that can load/unload the model named exactly in ``data`` (400 with a hint otherwise)."""
    model = data.get("model") if data.get("model") is not None else data.get("alias")
    if not isinstance(model, str) or not _MODEL_ID.match(model):
        raise InvalidRequest('send {"model": "<exact model id>"}', param="model", code="invalid_field")
    inventory = await gateway.inventory.snapshot(fresh=True)
    matches = [m for m in inventory.models if m.id == model]
    if not matches:
        known = ", ".join(inventory.ids()[:20]) or "none"
        raise InvalidRequest(
            f"unknown model {model!r}: load and unload take an exact id from GET /v1/models (known: {known})",
            param="model",
            code="model_not_found",
        )
    for info in matches:
        backend = gateway.backends[info.backend]
        if isinstance(backend, ModelLoader):
            return backend, model, info.backend
    raise InvalidRequest(
        f"model {model!r} is served by {matches[0].backend}, which cannot load or unload models on request",
        param="model",
        code="not_loadable",
    )


async def _resident(gateway: Gateway, backend: str) -> list[str]:
    """The models ``backend`` holds loaded now (the original's ``resident`` list)."""
    gateway.inventory.invalidate()
    inventory = await gateway.inventory.snapshot(fresh=True)
    return [m.id for m in inventory.models if m.backend == backend and m.loaded]


async def api_models_load(request: Request) -> Response:
    """Ours (``model``, ``loaded``) and the original's ``{ok, alias, resident}``."""
    gateway = _gateway(request)
    loader, model, backend = await _loader_for(gateway, await _body(request))
    await loader.load(model)
    resident = await _resident(gateway, backend)
    return _json({"ok": True, "alias": model, "model": model, "loaded": True, "resident": resident})


async def api_models_unload(request: Request) -> Response:
    gateway = _gateway(request)
    loader, model, backend = await _loader_for(gateway, await _body(request))
    now = await loader.unload(model)
    resident = await _resident(gateway, backend)
    return _json(
        {"ok": True, "alias": model, "model": model, "unloaded": now, "deferred": not now, "resident": resident}
    )


async def api_rescan(request: Request) -> Response:
    """Every model list read again; ours (``models`` count, ``errors``) and the original's
    ``{ok, diff: {added, removed, unchanged}}`` against what the gateway knew before."""
    gateway = _gateway(request)
    before = set(gateway.inventory.last.ids())
    for backend in gateway.backends.values():
        if isinstance(backend, ModelListCache):
            backend.forget_models()  # read again from the disk or server, not from a cache
    inventory = await gateway.inventory.snapshot(fresh=True)
    after = set(inventory.ids())
    diff = {"added": sorted(after - before), "removed": sorted(before - after), "unchanged": sorted(after & before)}
    return _json({"ok": True, "diff": diff, "models": len(inventory.models), "errors": dict(inventory.errors)})


def route_specs() -> list[RouteSpec]:
    """The page and its static files are public; its JSON API needs the key."""
    files = _files()

    def static(name: str) -> Any:
        async def serve(request: Request) -> Response:
            return Response(files[name], media_type=STATIC[name], headers=PAGE_HEADERS)

        return serve

    def public(path: str, endpoint: Any, summary: str, media_type: str = "application/json") -> RouteSpec:
        return RouteSpec(path, endpoint, summary=summary, public=True, tags=("dashboard",), media_type=media_type)

    async def index(request: Request) -> Response:
        return await page(request, files["index.html"])

    def api(
        path: str, endpoint: Any, summary: str, methods: tuple[str, ...] = ("GET",), body: type[BaseModel] | None = None
    ) -> RouteSpec:
        return RouteSpec(path, endpoint, methods, summary, body, tags=("dashboard",), errors=(400, 404))

    async def to_page(request: Request) -> Response:
        # Relative, so it names no host: never the Host header a client sent, and right behind a prefix.
        return Response(status_code=307, headers={"Location": "dashboard/", **PAGE_HEADERS})

    return [
        RouteSpec(
            PREFIX,
            to_page,
            summary="Redirects to the page",
            public=True,
            tags=("dashboard",),
            media_type="text/html",
            success_status=307,
        ),
        public("/dashboard/", index, "The dashboard page", STATIC["index.html"]),
        public("/dashboard/auth", auth_info, "Whether the dashboard needs a key"),
        *(
            public(f"/dashboard/static/{name}", static(name), f"Dashboard file {name}", STATIC[name])
            for name in STATIC
            if name != "index.html"
        ),
        api("/dashboard/api/snapshot", api_snapshot, "Live state for the dashboard"),
        api("/dashboard/api/config", api_config, "The configuration, secrets masked"),
        api("/dashboard/api/preferences", api_preferences, "Runtime preferences", ("GET", "POST")),
        api("/dashboard/api/models/load", api_models_load, "Load a discovered model", ("POST",), ModelAction),
        api("/dashboard/api/models/unload", api_models_unload, "Unload a model", ("POST",), ModelAction),
        api("/dashboard/api/admin/rescan", api_rescan, "Refresh every model list", ("POST",)),
    ]
