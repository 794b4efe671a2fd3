"""How the HTTP/1.1 client splits a base URL into the origin it connects to and the path prefix
it puts before every request's path."""

from __future__ import annotations

import pytest

from local_lattice.backends.http1 import Origin


@pytest.mark.parametrize(
    ("url", "tls", "host", "port", "path", "authority"),
    [
        ("http://example.com/v1/", False, "example.com", 80, "/v1", "example.com"),
        ("http://example.com:80", False, "example.com", 80, "", "example.com"),
        ("http://example.com:443/v1", False, "example.com", 443, "/v1", "example.com:443"),
        ("https://api.example.com/openai/v1", True, "api.example.com", 443, "/openai/v1", "api.example.com"),
        ("https://api.example.com:8443/", True, "api.example.com", 8443, "", "api.example.com:8443"),
        ("http://[::1]:8080/v1", False, "::1", 8080, "/v1", "[::1]:8080"),
        ("https://[fe80::1]/x", True, "fe80::1", 443, "/x", "[fe80::1]"),
    ],
)
def test_origin_splits_a_base_url(url: str, tls: bool, host: str, port: int, path: str, authority: str) -> None:
    origin = Origin(url)
    assert (origin.tls, origin.host, origin.port, origin.path, origin.authority) == (tls, host, port, path, authority)


@pytest.mark.parametrize("url", ["ftp://example.com/", "example.com:80", "http://", "unix:///tmp/s", "ws://h/"])
def test_origin_refuses_what_is_not_http(url: str) -> None:
    with pytest.raises(ValueError, match="is not an http"):
        Origin(url)
