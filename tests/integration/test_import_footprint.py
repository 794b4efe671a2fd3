"""What importing the app pulls in: the heavy and optional parts wait until something needs them."""

from __future__ import annotations

import subprocess

import pytest

from tests.support.procs import PYTHON

# Clients are imported when the first backend that uses them is built, the engine machinery with
# the first in-process backend, the swarm package on the first swarm request, the Anthropic stream
# translator on the first streamed Messages answer.
DEFERRED = (
    "aiohttp",
    "anthropic",
    "llama_cpp",
    "mlx",
    "local_lattice.backends.anthropic",
    "local_lattice.engines.engine",
    "local_lattice.protocol.anthropic_stream",
    "local_lattice.swarm",
)


def imported_after(code: str) -> list[str]:
    probe = f"{code}; import sys; print(' '.join(sorted(sys.modules)))"
    return subprocess.run([PYTHON, "-c", probe], check=True, capture_output=True, text=True, timeout=60).stdout.split()


@pytest.mark.slow
def test_importing_the_app_defers_clients_engines_and_swarms() -> None:
    modules = imported_after("import local_lattice.api.app")
    assert "local_lattice.gateway" in modules
    assert [m for m in modules if any(m == d or m.startswith(d + ".") for d in DEFERRED)] == []
