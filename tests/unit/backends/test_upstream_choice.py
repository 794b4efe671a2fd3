"""Which transport a backend's origin gets, and which proxy (``backends/upstream.py``)."""

from __future__ import annotations

import pytest

from local_lattice.backends.http1 import Origin, Pool
from local_lattice.backends.httpx_upstream import HttpxUpstream
from local_lattice.backends.upstream import exempt, open_upstream, proxy_for

PROXY = "http://proxy.corp:3128"


@pytest.mark.parametrize(
    ("url", "configured", "env", "expected"),
    [
        ("https://api.example.com", None, {}, None),
        ("https://api.example.com", None, {"HTTPS_PROXY": PROXY}, PROXY),
        ("https://api.example.com", None, {"https_proxy": PROXY}, PROXY),
        ("http://api.example.com", None, {"HTTPS_PROXY": PROXY}, None),
        ("http://api.example.com", None, {"HTTP_PROXY": PROXY}, PROXY),
        ("https://api.example.com", None, {"ALL_PROXY": PROXY}, PROXY),
        ("https://api.example.com", None, {"HTTPS_PROXY": PROXY, "NO_PROXY": "example.com"}, None),
        ("https://api.example.com", None, {"HTTPS_PROXY": PROXY, "NO_PROXY": ".example.com:443"}, None),
        ("https://api.example.com", None, {"HTTPS_PROXY": PROXY, "NO_PROXY": "*"}, None),
        ("https://api.example.com", None, {"HTTPS_PROXY": PROXY, "NO_PROXY": "other.com,xample.com"}, PROXY),
        ("http://127.0.0.1:8080", None, {"HTTP_PROXY": PROXY}, None),  # loopback never takes the environment's
        ("http://localhost:8080", None, {"HTTP_PROXY": PROXY}, None),
        ("http://[::1]:8080", None, {"HTTP_PROXY": PROXY}, None),
        ("http://127.0.0.1:8080", PROXY, {}, PROXY),  # the backend's own key applies whatever the origin
    ],
)
def test_the_proxy_for_an_origin(url: str, configured: str | None, env: dict[str, str], expected: str | None) -> None:
    assert proxy_for(Origin(url), configured, env) == expected


def test_no_proxy_matches_names_and_their_subdomains_only() -> None:
    assert exempt("a.b.example.com", "example.com")
    assert exempt("EXAMPLE.com", "example.com")
    assert not exempt("badexample.com", "example.com")


def choose(url: str, proxy: str | None = None, env: dict[str, str] | None = None) -> object:
    return open_upstream(
        url, headers={}, limit=4, connect_timeout=1, max_answer_bytes=1 << 20, max_decoded_bytes=1 << 20,
        proxy=proxy, env=env or {},
    )  # fmt: skip


async def test_loopback_and_direct_http_origins_use_the_own_pool() -> None:
    assert isinstance(choose("http://127.0.0.1:8080"), Pool)
    assert isinstance(choose("https://127.0.0.1:8443"), Pool)
    assert isinstance(choose("http://models.lan:8000"), Pool)


async def test_remote_https_and_proxied_origins_use_httpx() -> None:
    remote = choose("https://api.example.com")
    assert isinstance(remote, HttpxUpstream)
    assert remote.proxy is None
    proxied = choose("http://127.0.0.1:8080", proxy=PROXY)
    assert isinstance(proxied, HttpxUpstream)
    assert proxied.proxy == PROXY
    for made in (remote, proxied):
        await made.aclose()
