"""The gateway as a real process: ``lattice serve`` on a free loopback port with a generated config.

``gateway_process(backends, api_key=...)`` writes a TOML config into a temporary directory, starts
``python -m local_lattice.cli serve`` with this checkout's ``src`` first on ``PYTHONPATH``, waits
until ``/healthz`` answers 200 and yields the base URL. Its stderr goes to a file in that directory
(a pipe nobody reads would fill up and stall the server under load).
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from tests.support.nginx import free_port, stop

SRC = Path(__file__).resolve().parents[2] / "src"


@dataclass(frozen=True, slots=True)
class GatewayProcess:
    url: str  # base URL ending in /v1
    root: str
    api_key: str | None
    log: Path
    pid: int


def render_config(backends: Sequence[tuple[str, str]], api_key: str | None, extra: str = "") -> str:
    """A TOML config with one ``openai`` backend per ``(name, url)`` pair."""
    lines = ["[server]"]
    if api_key is not None:
        lines.append(f'api_keys = ["{api_key}"]')
    for name, url in backends:
        lines += ["", "[[backends]]", f'name = "{name}"', 'type = "openai"', f'url = "{url}"']
    return "\n".join(lines) + "\n" + extra


def wait_healthy(root: str, proc: subprocess.Popen[bytes], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the gateway exited with {proc.returncode} before it was ready")
        with (
            contextlib.suppress(OSError, urllib.error.URLError),
            urllib.request.urlopen(root + "/healthz", timeout=1) as resp,
        ):
            if resp.status == 200:
                return
        time.sleep(0.05)
    raise TimeoutError(f"the gateway at {root} was not healthy within {timeout} s")


@contextlib.contextmanager
def gateway_process(
    backends: Sequence[tuple[str, str]],
    *,
    api_key: str | None = None,
    extra_config: str = "",
    env: Mapping[str, str] | None = None,
    timeout: float = 20.0,
) -> Iterator[GatewayProcess]:
    with tempfile.TemporaryDirectory(prefix="lattice-gateway-") as tmp:
        workdir = Path(tmp)
        config = workdir / "lattice.toml"
        config.write_text(render_config(backends, api_key, extra_config), encoding="utf-8")
        log = workdir / "gateway.log"
        port = free_port()
        child_env = {k: v for k, v in os.environ.items() if k != "MIDDLE_LAYER_API_KEY"}
        child_env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(SRC), child_env.get("PYTHONPATH")]))
        child_env.update(env or {})
        command = [sys.executable, "-m", "local_lattice.cli", "serve", "--config", str(config)]
        command += ["--host", "127.0.0.1", "--port", str(port)]
        with log.open("wb") as sink:
            proc = subprocess.Popen(command, env=child_env, stdin=subprocess.DEVNULL, stdout=sink, stderr=sink)
        root = f"http://127.0.0.1:{port}"
        try:
            try:
                wait_healthy(root, proc, timeout)
            except (RuntimeError, TimeoutError) as exc:
                raise RuntimeError(f"{exc}; log:\n{log.read_text(errors='replace')[-3000:]}") from None
            yield GatewayProcess(url=root + "/v1", root=root, api_key=api_key, log=log, pid=proc.pid)
        finally:
            stop(proc)
