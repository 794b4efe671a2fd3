"""The httpx transport end to end: the real gateway reaches an HTTPS upstream (hypercorn, HTTP/2
offered) only through a real CONNECT proxy on loopback, set per backend or by ``HTTPS_PROXY``; without
the proxy the same backend is unreachable. Nothing leaves the machine: the proxy maps the origin
the backend names (an address nothing listens on, or a made-up name it alone knows) to the upstream."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest
import trustme

from tests.support.connect_proxy import ConnectProxy, OpenAIApp, connect_proxy, h2_upstream
from tests.support.hostile import assert_nothing_held
from tests.support.procs import free_port
from tests.support.servers import gateway_process

pytestmark = pytest.mark.slow

MESSAGES = [{"role": "user", "content": "hi"}]
CLOUD = "cloud.test"


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory, ca: trustme.CA) -> Path:
    path = tmp_path_factory.mktemp("tls")
    ca.cert_pem.write_to_path(str(path / "ca.pem"))
    return path


@pytest.fixture(scope="module")
def upstream(ca: trustme.CA, folder: Path) -> Iterator[tuple[int, OpenAIApp]]:
    with h2_upstream(ca, folder, "127.0.0.1", CLOUD) as pair:
        yield pair


@pytest.fixture(scope="module")
def dead_port() -> int:
    return free_port()  # nothing listens here: only the proxy knows where this origin is


@pytest.fixture(scope="module")
def proxy(upstream: tuple[int, OpenAIApp], dead_port: int) -> Iterator[ConnectProxy]:
    port, _ = upstream
    routes = {("127.0.0.1", dead_port): ("127.0.0.1", port), (CLOUD, 443): ("127.0.0.1", port)}
    with connect_proxy(routes) as running:
        yield running


def backend_toml(url: str, proxy: str | None = None) -> str:
    lines = ["[observability]", "metrics_public = true", "[[backends]]", 'name = "cloud"', f'url = "{url}"']
    lines += ['api_key = "cloud-key"', 'models = ["cloud-model"]']
    if proxy is not None:
        lines.append(f'proxy = "{proxy}"')
    return "\n".join(lines) + "\n"


def ask(url: str) -> tuple[str, str]:
    client = openai.OpenAI(base_url=url + "/v1", api_key="x", max_retries=0)
    whole = client.chat.completions.create(model="cloud-model", messages=MESSAGES)  # type: ignore[arg-type]
    streamed = client.chat.completions.create(model="cloud-model", messages=MESSAGES, stream=True)  # type: ignore[arg-type]
    return whole.choices[0].message.content or "", "".join(
        c.choices[0].delta.content or "" for c in streamed if c.choices
    )


def test_the_backend_proxy_key_reaches_the_upstream_over_http2(
    proxy: ConnectProxy, upstream: tuple[int, OpenAIApp], dead_port: int, folder: Path
) -> None:
    _, app = upstream
    before = len(app.versions)
    toml = backend_toml(f"https://127.0.0.1:{dead_port}/v1", proxy=proxy.url)
    with gateway_process(toml, env={"SSL_CERT_FILE": str(folder / "ca.pem")}) as gw:
        assert ask(gw.url) == ("via h2", "via h2")
        assert_nothing_held(gw)
    assert ("127.0.0.1", dead_port) in proxy.asked
    assert set(app.versions[before:]) == {"2"}  # the origin offered HTTP/2 and it was used


def test_https_proxy_from_the_environment_reaches_a_named_origin(proxy: ConnectProxy, folder: Path) -> None:
    env = {"SSL_CERT_FILE": str(folder / "ca.pem"), "HTTPS_PROXY": proxy.url, "NO_PROXY": "localhost,127.0.0.1"}
    with gateway_process(backend_toml(f"https://{CLOUD}/v1"), env=env) as gw:
        assert ask(gw.url) == ("via h2", "via h2")
    assert (CLOUD, 443) in proxy.asked


def test_without_the_proxy_setting_the_origin_is_unreachable(dead_port: int, folder: Path) -> None:
    with gateway_process(
        backend_toml(f"https://127.0.0.1:{dead_port}/v1"), env={"SSL_CERT_FILE": str(folder / "ca.pem")}
    ) as gw:
        health = httpx.get(gw.url + "/healthz", timeout=30).json()["backends"]["cloud"]
        assert health["ok"] is False
        assert "unreachable" in health["detail"]
        body = {"model": "cloud-model", "messages": MESSAGES}
        assert httpx.post(gw.url + "/v1/chat/completions", json=body, timeout=30).status_code >= 400
        assert_nothing_held(gw)


def test_an_untrusted_certificate_through_the_proxy_is_refused(proxy: ConnectProxy, dead_port: int) -> None:
    with gateway_process(backend_toml(f"https://127.0.0.1:{dead_port}/v1", proxy=proxy.url)) as gw:
        health = httpx.get(gw.url + "/healthz", timeout=30).json()["backends"]["cloud"]
        assert health["ok"] is False
        assert "CERTIFICATE_VERIFY_FAILED" in health["detail"]
