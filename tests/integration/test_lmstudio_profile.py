"""The original's ``local-lattice-lmstudio`` entry point: env only, one upstream at LM_STUDIO_URL, named
``local`` as the original's answers named it (a server without LM Studio's own model list)."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import httpx
import pytest

from tests.support.models import SMOLLM2_ID
from tests.support.procs import RunningProcess, free_port, run_process

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("script", ["local-lattice-lmstudio", "middle-layer-lmstudio"])
def test_lmstudio_script_serves_the_upstream(smollm2_server: RunningProcess, script: str) -> None:
    exe = shutil.which(script) or str(Path(sys.executable).parent / script)
    port = free_port()
    env = {"LM_STUDIO_URL": smollm2_server.url.removesuffix("/v1"), "PORT": str(port), "MIDDLE_LAYER_API_KEY": ""}
    base = f"http://127.0.0.1:{port}"
    with run_process([exe], ready_url=base + "/healthz", base_url=base, env=env):
        models = httpx.get(base + "/v1/models").json()["data"]
        assert [(m["id"], m["owned_by"]) for m in models] == [(SMOLLM2_ID, "local")]
        answer = httpx.post(
            base + "/v1/chat/completions",
            json={"model": SMOLLM2_ID, "messages": [{"role": "user", "content": "Say hi"}], "max_tokens": 4},
            timeout=60,
        )
        assert answer.status_code == 200
        assert answer.headers["x-model-routed-to"] == f"local/{SMOLLM2_ID}"
