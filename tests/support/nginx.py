"""A real nginx as a fixed-answer OpenAI-compatible upstream, for integration tests and benchmarks.

``nginx_upstream()`` writes a config into a temporary directory, starts nginx in the foreground on a
free loopback port and yields its base URLs. nginx cannot read a request body, so the two kinds of
answer live under two path prefixes, each a complete OpenAI-compatible base URL:

- ``json``: ``POST /json/v1/chat/completions`` answers a fixed ``chat.completion`` object and
  ``GET /json/v1/models`` lists ``fixed-json``;
- ``sse``: ``POST /sse/v1/chat/completions`` answers a fixed ``text/event-stream`` of
  ``SSE_CHUNKS`` chunks and ``data: [DONE]``; ``GET /sse/v1/models`` lists ``fixed-sse``;
- ``GET /v1/models`` at the root lists both models.

Everything else answers 404 in the OpenAI error shape. ``ollama_front(upstream, models)`` is nginx in
Ollama's shape instead: its model lists answered, ``/v1/`` passed on to a real OpenAI-compatible
server. Logs, pid and temp files stay in the temporary directory; nothing outside it is touched.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import orjson

from tests.support.procs import free_port

JSON_MODEL = "fixed-json"
SSE_MODEL = "fixed-sse"
SSE_CHUNKS = 8
CREATED = 1_700_000_000
ANSWER = "Hello from nginx."


@dataclass(frozen=True, slots=True)
class NginxUrls:
    """Base URLs (each ends in ``/v1``) of one running nginx."""

    root: str
    json: str
    sse: str
    workdir: Path


def models_body(*ids: str) -> bytes:
    data = [{"id": i, "object": "model", "created": CREATED, "owned_by": "nginx"} for i in ids]
    return orjson.dumps({"object": "list", "data": data})


def completion_body() -> bytes:
    return orjson.dumps(
        {
            "id": "chatcmpl-nginx",
            "object": "chat.completion",
            "created": CREATED,
            "model": JSON_MODEL,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": ANSWER}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 5, "completion_tokens": 4, "total_tokens": 9},
        }
    )


def stream_chunk(index: int) -> bytes:
    last = index == SSE_CHUNKS - 1
    delta = {"role": "assistant", "content": "tok "} if index == 0 else {"content": "tok "}
    return orjson.dumps(
        {
            "id": "chatcmpl-nginx-stream",
            "object": "chat.completion.chunk",
            "created": CREATED,
            "model": SSE_MODEL,
            "choices": [{"index": 0, "delta": {} if last else delta, "finish_reason": "stop" if last else None}],
        }
    )


def stream_body() -> bytes:
    return b"".join(b"data: " + stream_chunk(i) + b"\n\n" for i in range(SSE_CHUNKS)) + b"data: [DONE]\n\n"


def _quoted(body: bytes) -> str:
    """``body`` as an nginx single-quoted string (nginx expands \\n; none of our bodies hold ``$``)."""
    text = body.decode()
    assert "$" not in text
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'").replace("\n", "\\n") + "'"


def _fixed(path: str, content_type: str, body: bytes, method: str) -> str:
    return (
        f"        location = {path} {{\n"
        f"            limit_except {method} {{ deny all; }}\n"
        f"            default_type {content_type};\n"
        f"            return 200 {_quoted(body)};\n"
        f"        }}\n"
    )


def render_config(workdir: Path, port: int) -> str:
    """The nginx configuration: one worker, loopback only, no access log, files under ``workdir``."""
    locations = [
        _fixed("/v1/models", "application/json", models_body(JSON_MODEL, SSE_MODEL), "GET"),
        _fixed("/json/v1/models", "application/json", models_body(JSON_MODEL), "GET"),
        _fixed("/sse/v1/models", "application/json", models_body(SSE_MODEL), "GET"),
        _fixed("/json/v1/chat/completions", "application/json", completion_body(), "POST"),
        _fixed("/sse/v1/chat/completions", "text/event-stream", stream_body(), "POST"),
    ]
    return _server_config(workdir, port, "".join(locations))


def _not_found() -> str:
    body = orjson.dumps({"error": {"message": "no such route", "type": "not_found", "code": "not_found"}})
    return (
        "        location / {\n"
        "            default_type application/json;\n"
        f"            return 404 {_quoted(body)};\n"
        "        }\n"
    )


def _server_config(workdir: Path, port: int, locations: str) -> str:
    """One worker, loopback only, no access log, files under ``workdir``; anything else answers 404."""
    user = "user root;\n" if os.geteuid() == 0 else ""
    temp = "".join(
        f"    {kind}_temp_path {workdir}/{kind};\n" for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    return (
        f"{user}worker_processes 1;\n"
        "daemon off;\n"
        f"pid {workdir}/nginx.pid;\n"
        f"error_log {workdir}/error.log warn;\n"
        "events { worker_connections 4096; }\n"
        "http {\n"
        "    access_log off;\n"
        "    server_tokens off;\n"
        "    keepalive_requests 1000000;\n"
        "    keepalive_timeout 75s;\n"
        f"{temp}"
        "    server {\n"
        f"        listen 127.0.0.1:{port} backlog=4096;\n" + locations + _not_found() + "    }\n"
        "}\n"
    )


def render_ollama_front(workdir: Path, port: int, upstream: str, models: Sequence[str]) -> str:
    """Ollama's shape in front of an OpenAI-compatible server: its model lists (``/api/tags``, every
    model installed; ``/api/ps``, every model loaded) answered by nginx, ``/v1/`` passed to ``upstream``
    (its ``/v1`` base URL), streams unbuffered."""
    tags = [{"name": m, "model": m, "size": 1, "details": {"family": "llama"}} for m in models]
    locations = (
        _fixed("/api/tags", "application/json", orjson.dumps({"models": tags}), "GET")
        + _fixed("/api/ps", "application/json", orjson.dumps({"models": [{"name": m} for m in models]}), "GET")
        + "        location /v1/ {\n"
        f"            proxy_pass {upstream.rstrip('/')}/;\n"
        "            proxy_http_version 1.1;\n"
        '            proxy_set_header Connection "";\n'
        "            proxy_buffering off;\n"
        "            proxy_read_timeout 300s;\n"
        "        }\n"
    )
    return _server_config(workdir, port, locations)


def wait_for_port(port: int, proc: subprocess.Popen[bytes], timeout: float) -> None:
    """Return once ``port`` accepts connections; raise if ``proc`` exits or ``timeout`` passes."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before listening on {port}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return
        time.sleep(0.02)
    raise TimeoutError(f"nothing listened on port {port} within {timeout} s")


def stop(proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM, timeout: float = 5.0) -> None:
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout)


def nginx_binary() -> str:
    found = shutil.which("nginx") or next((p for p in ("/usr/sbin/nginx",) if os.path.exists(p)), None)
    if found is None:
        raise RuntimeError("nginx is not installed (Debian: apt-get install -y nginx-light)")
    return found


@contextlib.contextmanager
def running_nginx(render: Callable[[Path, int], str], timeout: float = 10.0) -> Iterator[tuple[str, Path]]:
    """nginx with the config ``render(workdir, port)`` on a free loopback port; yields its root URL and
    work directory; stops it and removes its files on exit."""
    binary = nginx_binary()
    with tempfile.TemporaryDirectory(prefix="lattice-nginx-") as tmp:
        workdir = Path(tmp)
        for attempt in range(3):  # another process may take the free port between probe and bind
            port = free_port()
            conf = workdir / "nginx.conf"
            conf.write_text(render(workdir, port), encoding="utf-8")
            proc = subprocess.Popen(
                [binary, "-p", str(workdir), "-c", str(conf), "-e", str(workdir / "error.log")],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            try:
                wait_for_port(port, proc, timeout)
                break
            except (RuntimeError, TimeoutError):
                stop(proc)
                if attempt == 2:
                    log = (
                        (workdir / "error.log").read_text(errors="replace") if (workdir / "error.log").exists() else ""
                    )
                    raise RuntimeError(f"nginx did not start: {log.strip()[-2000:]}") from None
        try:
            yield f"http://127.0.0.1:{port}", workdir
        finally:
            stop(proc, signal.SIGQUIT)  # graceful: lets the worker finish and remove the pid file


@contextlib.contextmanager
def nginx_upstream(timeout: float = 10.0) -> Iterator[NginxUrls]:
    """Start nginx on a free loopback port; yield its URLs; stop it and remove its files on exit."""
    with running_nginx(render_config, timeout) as (root, workdir):
        yield NginxUrls(root=root + "/v1", json=root + "/json/v1", sse=root + "/sse/v1", workdir=workdir)


@contextlib.contextmanager
def ollama_front(upstream: str, models: Sequence[str], timeout: float = 10.0) -> Iterator[str]:
    """nginx speaking Ollama's model lists in front of the OpenAI-compatible ``upstream`` (see
    ``render_ollama_front``); yields its root URL (Ollama's, without ``/v1``)."""
    with running_nginx(lambda workdir, port: render_ollama_front(workdir, port, upstream, models), timeout) as (
        root,
        _,
    ):
        yield root
