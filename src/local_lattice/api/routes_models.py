"""Model residency routes: ``DELETE /v1/models/{id}`` (unload) and ``POST /v1/models/{id}/load``.

HTTP only. They act on backends that can load and unload (``ModelLoader``) and only on ids those
backends list, so a client can never make the gateway open an arbitrary path. An unload answers
with the original's ``ok`` and ``resident`` (the models still loaded) beside ours, also inside the
error of a 404; grab mode, which serves its one model, refuses it (400) as the original did.
"""

from __future__ import annotations

import time

from starlette.requests import Request
from starlette.responses import Response

from local_lattice.api.dispatch import gateway_of
from local_lattice.api.payload import json_response
from local_lattice.api.route_table import RouteSpec
from local_lattice.backends.base import ModelLoader
from local_lattice.errors import InvalidRequest, ModelNotFound, NotFound
from local_lattice.gateway import Gateway


async def _loader_for(request: Request) -> tuple[str, ModelLoader, str]:
    """``(model id, backend, backend name)`` of a listed model whose backend loads and unloads."""
    gateway = gateway_of(request)
    model_id = request.path_params["model_id"]
    snapshot = await gateway.inventory.snapshot(fresh=True)
    for model in snapshot.models:
        backend = gateway.backends.get(model.backend)
        if model.id.lower() == model_id.lower() and isinstance(backend, ModelLoader):
            return model.id, backend, model.backend
    raise ModelNotFound(f"model {model_id!r} is not a local model this gateway can load or unload", param="model")


async def _resident(gateway: Gateway) -> list[str]:
    """Ids loaded now on the backends that load and unload."""
    out: list[str] = []
    for backend in gateway.backends.values():
        if isinstance(backend, ModelLoader):
            out += [m.id for m in await backend.models() if m.loaded]
    return out


async def unload_model(request: Request) -> Response:
    gateway = gateway_of(request)
    if gateway.config.engines.grab_model:
        raise InvalidRequest("cannot unload in grab mode: it serves one model (unset MLX_GRAB_MODEL)", code="grab_mode")
    try:
        model_id, backend, name = await _loader_for(request)
        dropped = await backend.unload(model_id)
    except (ModelNotFound, NotFound):
        missing = NotFound(f"model {request.path_params['model_id']!r} is not loaded", code="model_not_loaded")
        missing.extra.update(ok=False, resident=await _resident(gateway))
        raise missing from None
    gateway.inventory.invalidate()
    body = {"ok": True, "id": model_id, "backend": name, "unloaded": dropped, "deferred": not dropped}
    if not dropped:
        body |= {"alias": model_id, "note": f"{model_id!r} is in use; it is unloaded when its last call ends"}
    body["resident"] = await _resident(gateway)
    return json_response(body, status=200 if dropped else 202)


async def load_model(request: Request) -> Response:
    model_id, backend, name = await _loader_for(request)
    started = time.perf_counter()
    await backend.load(model_id)
    gateway_of(request).inventory.invalidate()
    elapsed_ms = round((time.perf_counter() - started) * 1000)
    return json_response({"id": model_id, "backend": name, "loaded": True, "load_ms": elapsed_ms})


ROUTES = (
    RouteSpec("/v1/models/{model_id:path}/load", load_model, ("POST",), "Load a discovered model",
              errors=(400, 404, 503), tags=("models",)),
    RouteSpec("/v1/models/{model_id:path}", unload_model, ("DELETE",),
              "Unload a model (200 dropped, 202 deferred while in use, 404 not resident)", errors=(404,),
              tags=("models",)),
)  # fmt: skip
