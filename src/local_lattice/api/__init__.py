"""HTTP layer: the app factory, routes (HTTP only), pure-ASGI middleware and the SSE writer."""
