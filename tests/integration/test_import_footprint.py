"""What importing the app pulls in: the optional and heavy clients wait until a backend needs them."""

from __future__ import annotations

import subprocess

import pytest

from tests.support.procs import PYTHON

# Each is imported when the first backend that uses it is built.
DEFERRED = ("aiohttp", "anthropic", "llama_cpp", "mlx")


def imported_after(code: str) -> set[str]:
    probe = f"{code}; import sys; print(' '.join(sorted(sys.modules)))"
    out = subprocess.run([PYTHON, "-c", probe], check=True, capture_output=True, text=True, timeout=60).stdout
    return {name.split(".")[0] for name in out.split()}


@pytest.mark.slow
def test_importing_the_app_defers_backend_clients() -> None:
    assert imported_after("import local_lattice.api.app").isdisjoint(DEFERRED)
