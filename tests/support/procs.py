"""Real processes for integration tests: free ports, start-and-wait, and clean shutdown with logs."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx

PYTHON = sys.executable


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class RunningProcess:
    proc: subprocess.Popen[bytes]
    log_path: Path
    url: str

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def wait_http(url: str, proc: subprocess.Popen[bytes], log_path: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(
                f"process exited with {proc.returncode}:\n{log_path.read_text(errors='replace')[-4000:]}"
            )
        try:
            httpx.get(url, timeout=1.0)
            return
        except httpx.HTTPError:
            time.sleep(0.05)
    raise TimeoutError(f"{url} did not answer in {timeout}s:\n{log_path.read_text(errors='replace')[-4000:]}")


@contextlib.contextmanager
def run_process(
    argv: Sequence[str],
    *,
    ready_url: str,
    base_url: str,
    env: Mapping[str, str] | None = None,
    timeout: float = 60.0,
    cwd: str | None = None,
    inherit_env: bool = True,
) -> Iterator[RunningProcess]:
    """Start ``argv``, wait until ``ready_url`` answers anything, yield, then stop it (SIGTERM, then SIGKILL).
    ``inherit_env=False`` starts it with ``env`` alone (plus PATH and the locale), as on a clean machine."""
    fd, name = tempfile.mkstemp(prefix="lattice-proc-", suffix=".log")
    log_path = Path(name)
    base = os.environ if inherit_env else {k: v for k, v in os.environ.items() if k in ("PATH", "LANG", "LC_ALL")}
    full_env = {**base, **(env or {})}
    with os.fdopen(fd, "wb") as log_file:
        proc = subprocess.Popen(
            list(argv), stdout=log_file, stderr=subprocess.STDOUT, env=full_env, cwd=cwd, start_new_session=True
        )
    try:
        wait_http(ready_url, proc, log_path, timeout)
        yield RunningProcess(proc, log_path, base_url)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)
