"""Model residency routes: ``DELETE /v1/models/{id}`` (unload) and ``POST /v1/models/{id}/load``.

HTTP only. They act on backends that can load and unload (``ModelLoader``) and only on ids those
backends list, so a client can never make the gateway open an arbitrary path.
"""

from __future__ import annotations

import time

from starlette.requests import Request
from starlette.responses import Response

from local_lattice.api.dispatch import gateway_of
from local_lattice.api.payload import json_response
from local_lattice.api.route_table import RouteSpec
from local_lattice.backends.base import ModelLoader
from local_lattice.errors import ModelNotFound, NotFound


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


async def unload_model(request: Request) -> Response:
    try:
        model_id, backend, name = await _loader_for(request)
    except ModelNotFound:
        raise NotFound(f"model {request.path_params['model_id']!r} is not loaded", code="model_not_loaded") from None
    dropped = await backend.unload(model_id)
    gateway_of(request).inventory.invalidate()
    body = {"id": model_id, "backend": name, "unloaded": dropped, "deferred": not dropped}
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
