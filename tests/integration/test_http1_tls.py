"""The upstream client over TLS: ``https`` upstreams (clouds reached with the ``openai`` type) are
verified against the system's trust store, which ``SSL_CERT_FILE`` extends, on a real TLS socket."""

from __future__ import annotations

import ssl
from pathlib import Path

import orjson
import pytest
import trustme

from local_lattice.backends.openai_compat import OpenAIBackend
from local_lattice.backends.transport_errors import ConnectFailed
from local_lattice.config import BackendConfig
from local_lattice.errors import BackendUnavailable
from local_lattice.types import BackendRequest
from tests.support.raw_http import RawServer, always, fetch, pool_at, sized


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


def server_context(ca: trustme.CA, *names: str) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(*names).configure_cert(context)
    return context


@pytest.fixture
def trusted(ca: trustme.CA, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The test CA joins the trust store the way a user adds a private CA."""
    path = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    monkeypatch.setenv("SSL_CERT_FILE", str(path))


@pytest.mark.usefixtures("trusted")
async def test_https_answers_are_read_and_the_connection_kept(ca: trustme.CA) -> None:
    tls = server_context(ca, "127.0.0.1")
    async with RawServer(always(sized(b"secure")), tls=tls) as server, pool_at(server.url) as pool:
        assert [await fetch(pool) for _ in range(3)] == [b"secure"] * 3
    assert server.connections == 1
    assert f"Host: 127.0.0.1:{server.port}\r\n".encode() in server.requests[0].head


async def test_a_certificate_the_trust_store_does_not_know_is_refused(ca: trustme.CA) -> None:
    tls = server_context(ca, "127.0.0.1")
    async with RawServer(always(sized(b"secure")), tls=tls) as server, pool_at(server.url) as pool:
        with pytest.raises(ConnectFailed, match="CERTIFICATE_VERIFY_FAILED"):
            await fetch(pool)
        assert pool._open == 0
    assert server.requests == []


@pytest.mark.usefixtures("trusted")
async def test_a_certificate_for_another_name_is_refused(ca: trustme.CA) -> None:
    tls = server_context(ca, "upstream.example")
    async with RawServer(always(sized(b"secure")), tls=tls) as server, pool_at(server.url) as pool:
        with pytest.raises(ConnectFailed, match="CERTIFICATE_VERIFY_FAILED"):
            await fetch(pool)
    assert server.requests == []


@pytest.mark.usefixtures("trusted")
async def test_the_openai_backend_calls_an_https_upstream_with_its_own_key(ca: trustme.CA) -> None:
    answer = {"id": "c1", "object": "chat.completion", "model": "m", "choices": [
        {"index": 0, "message": {"role": "assistant", "content": "over TLS"}, "finish_reason": "stop"}]}  # fmt: skip
    body = orjson.dumps(answer)
    tls = server_context(ca, "127.0.0.1")
    async with RawServer(always(sized(body, [("Content-Type", "application/json")])), tls=tls) as server:
        backend = OpenAIBackend(BackendConfig(name="cloud", url=server.url + "/v1", api_key="sk-upstream-key"))
        try:
            got = await backend.complete(BackendRequest("chat", "m", {"messages": [{"role": "user", "content": "hi"}]}))
        finally:
            await backend.aclose()
    assert orjson.loads(got.content)["choices"][0]["message"]["content"] == "over TLS"
    request = server.requests[0]
    assert request.target == "/v1/chat/completions"
    assert b"Authorization: Bearer sk-upstream-key\r\n" in request.head


async def test_the_openai_backend_reports_an_untrusted_upstream_as_unavailable(ca: trustme.CA) -> None:
    tls = server_context(ca, "127.0.0.1")
    async with RawServer(always(sized(b"{}")), tls=tls) as server:
        backend = OpenAIBackend(BackendConfig(name="cloud", url=server.url + "/v1"))
        try:
            with pytest.raises(BackendUnavailable, match="CERTIFICATE_VERIFY_FAILED"):
                await backend.complete(BackendRequest("chat", "m", {"messages": []}))
        finally:
            await backend.aclose()
