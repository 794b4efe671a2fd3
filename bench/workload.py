"""What every benchmark sends: the gateway's config in front of nginx, the key and the request bodies."""

from __future__ import annotations

import os
from pathlib import Path

import orjson
from tests.support.nginx import JSON_MODEL, SSE_MODEL, NginxUrls
from tests.support.servers import backends_toml

KEY = "bench-key"
HEADERS = {"Content-Type": "application/json", "Authorization": f"Bearer {KEY}"}


def nginx_config(ng: NginxUrls) -> str:
    """One ``openai`` backend per nginx answer kind, API-key auth on."""
    return backends_toml([("nginx-json", ng.json), ("nginx-sse", ng.sse)], api_key=KEY)


def request_body(mode: str) -> bytes:
    messages = [{"role": "user", "content": "Say hello in one short sentence."}]
    if mode == "stream":
        return orjson.dumps({"model": SSE_MODEL, "messages": messages, "max_tokens": 16, "stream": True})
    return orjson.dumps({"model": JSON_MODEL, "messages": messages, "max_tokens": 16})


def use_this_checkout() -> None:
    """Make every process the benchmark starts import ``local_lattice`` from this checkout's ``src``
    (an installed copy elsewhere would otherwise be what gets measured)."""
    src = str(Path(__file__).resolve().parents[1] / "src")
    rest = os.environ.get("PYTHONPATH", "")
    os.environ["PYTHONPATH"] = src + (os.pathsep + rest if rest else "")
