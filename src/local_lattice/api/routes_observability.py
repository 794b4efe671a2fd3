"""``GET /metrics``: the Prometheus text exposition of this gateway's own registry.

The model gauges are refreshed from the inventory's cached snapshot at scrape time, so a scrape
costs no backend calls while the snapshot is fresh; the queue-depth gauge from admission's state
(every model that had a queue keeps its series, at 0 once nobody waits).
"""

from __future__ import annotations

from collections import Counter

from starlette.requests import Request
from starlette.responses import Response

from local_lattice.api.route_table import RouteSpec
from local_lattice.gateway import Gateway
from local_lattice.observability.metrics import CONTENT_TYPE


async def metrics(request: Request) -> Response:
    gateway: Gateway = request.app.state.gateway
    snapshot = await gateway.inventory.snapshot()
    available = Counter(m.backend for m in snapshot.models)
    loaded = Counter(m.backend for m in snapshot.models if m.loaded)
    gateway.observer.flush()  # requests finished in the last moments count too
    gateway.observer.metrics.set_models((name, available[name], loaded[name]) for name in gateway.backends)
    set_queue_depths(gateway)
    return Response(gateway.observer.metrics.render(), media_type=CONTENT_TYPE)


def set_queue_depths(gateway: Gateway) -> None:
    observer = gateway.observer
    waiting = {model: entry["waiting"] for model, entry in gateway.admission.snapshot()["models"].items()}
    for model in set(observer.queue_depths()) | set(waiting):
        observer.set_queue_depth(model, waiting.get(model, 0))


def routes(*, public: bool) -> tuple[RouteSpec, ...]:
    """``/metrics``: protected by the key unless ``[observability] metrics_public``."""
    return (
        RouteSpec(
            "/metrics", metrics, summary="Prometheus metrics", public=public, tags=("meta",), media_type=CONTENT_TYPE
        ),
    )
