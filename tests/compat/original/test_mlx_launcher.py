"""The original's MLX gateway, replayed: its recorded transcripts (``docs/_internal/baseline/``), its
README's calls and its ``serve`` flags, as black-box HTTP against the real ``local-lattice-mlx`` over
tiny MLX models (tests/support/tiny_mlx.py) that MLX really loads and runs on the CPU.

The user's checkout holds the original's ``mlx_roles.json`` and ``model_profiles.json``; the launcher
picks them up as the original's launcher did. Grab mode answers as the original's did: one model
called ``mlx`` owned by ``mlx-grab``, swarm routes 503, unload refused."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.launchers import AUTH, KEY, launch, mlx_launcher, script, settled
from tests.support.procs import RunningProcess

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[3]
ROLES = {"_comment": "the original's mlx_roles.json", "fast": ["tiny-b"], "coder": ["tiny-a"], "default": ["tiny-a"]}
PROFILES = {
    "defaults": {"latency_tier": "medium", "memory_gb_estimate": 12.0},
    "aliases": {"tiny-b": {"latency_tier": "fast"}},
}


def chat(model: str, text: str = "Reply with exactly: PONG", **extra: Any) -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": text}], "max_tokens": 8, **extra}


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tests.support.tiny_mlx import make_tiny_mlx_model

    root = tmp_path_factory.mktemp("mlx-models")
    make_tiny_mlx_model(root / "tiny-a", seed=1)
    make_tiny_mlx_model(root / "tiny-b", seed=2)
    return root


@pytest.fixture(scope="module")
def checkout(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("checkout")
    (folder / "mlx_roles.json").write_text(json.dumps(ROLES))
    (folder / "model_profiles.json").write_text(json.dumps(PROFILES))
    return folder


@pytest.fixture(scope="module")
def gateway(models: Path, checkout: Path) -> Iterator[RunningProcess]:
    """``local-lattice-mlx`` with no subcommand: the original served then too."""
    with mlx_launcher([], checkout, {"MLX_MODEL_ROOT": str(models)}) as proc:
        yield proc


def post(gateway: RunningProcess, path: str, body: dict[str, Any], **headers: str) -> httpx.Response:
    return httpx.post(gateway.url + path, json=body, headers={**AUTH, **headers}, timeout=120)


def test_01_02_24_25_auth_as_recorded(gateway: RunningProcess) -> None:
    assert httpx.get(gateway.url + "/v1/models").status_code == 401
    assert httpx.post(gateway.url + "/v1/chat/completions", json=chat("tiny-a")).status_code == 401
    query = httpx.post(gateway.url + f"/v1/chat/completions?api_key={KEY}", json=chat("tiny-a"))
    assert query.status_code == 401  # a key in the query string is refused
    bearer = httpx.get(gateway.url + "/v1/models", headers={"Authorization": f"Bearer {KEY}"})
    assert bearer.status_code == 200


def test_04_models_list_every_alias_owned_by_mlx(gateway: RunningProcess) -> None:
    data = httpx.get(gateway.url + "/v1/models", headers=AUTH).json()["data"]
    mlx = [(m["id"], m["object"], m["owned_by"]) for m in data if m["owned_by"] == "mlx"]
    assert sorted(mlx) == [("tiny-a", "model", "mlx"), ("tiny-b", "model", "mlx")]
    assert all(isinstance(m["created"], int) for m in data)


def test_11_chat_non_streaming(gateway: RunningProcess) -> None:
    answer = post(gateway, "/v1/chat/completions", chat("tiny-a"))
    assert answer.status_code == 200
    assert answer.headers["x-model-routed-to"] == "mlx/tiny-a"
    body = answer.json()
    assert (body["object"], body["model"]) == ("chat.completion", "tiny-a")
    assert body["choices"][0]["message"]["role"] == "assistant"
    assert body["choices"][0]["finish_reason"] in ("stop", "length")
    usage = body["usage"]
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    assert 0 < usage["completion_tokens"] <= 8


def test_12_chat_streaming(gateway: RunningProcess) -> None:
    with httpx.stream("POST", gateway.url + "/v1/chat/completions", json=chat("tiny-a", stream=True),
                      headers=AUTH, timeout=120) as resp:  # fmt: skip
        assert resp.status_code == 200
        assert resp.headers["content-type"].startswith("text/event-stream")
        assert resp.headers["x-model-routed-to"] == "mlx/tiny-a"
        events = [line[6:] for line in resp.iter_lines() if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert all(c["object"] == "chat.completion.chunk" and c["model"] == "tiny-a" for c in chunks)
    assert chunks[-1]["choices"][0]["finish_reason"] in ("stop", "length")


def test_13_text_completion(gateway: RunningProcess) -> None:
    answer = post(gateway, "/v1/completions", {"model": "tiny-b", "prompt": "2+2=", "max_tokens": 4})
    assert answer.status_code == 200
    assert answer.headers["x-model-routed-to"] == "mlx/tiny-b"
    body = answer.json()
    assert body["object"] == "text_completion"
    assert isinstance(body["choices"][0]["text"], str)
    assert body["choices"][0]["index"] == 0


def test_14_an_unknown_alias_falls_back_and_says_so(gateway: RunningProcess) -> None:
    answer = post(gateway, "/v1/chat/completions", chat("gpt-9000-imaginary"))
    assert answer.status_code == 200
    assert answer.headers["x-model-routed-to"] == "mlx/tiny-a"  # role default in the checkout's roles file
    assert answer.headers["x-model-resolution"].startswith("fallback (requested 'gpt-9000-imaginary', not present)")


def test_15_a_role_from_the_checkouts_roles_file(gateway: RunningProcess) -> None:
    answer = post(gateway, "/v1/chat/completions", chat("role:fast"))
    assert answer.status_code == 200
    assert answer.headers["x-model-routed-to"] == "mlx/tiny-b"
    roles = httpx.get(gateway.url + "/swarm/models", headers=AUTH).json()["roles"]
    assert roles["fast"] == ["tiny-b"]
    assert "_comment" not in roles


def test_23_the_latency_tier_header_picks_the_model_marked_fast(gateway: RunningProcess) -> None:
    # tiny-a comes first for "auto", but the checkout's model_profiles.json marks tiny-b fast. The
    # demo SmolLM2 (135M) is small by its size token, yet the file's defaults call it medium, 12 GB.
    plain = post(gateway, "/v1/chat/completions", chat("auto"))
    assert plain.headers["x-model-routed-to"] == "mlx/tiny-a"
    fast = post(gateway, "/v1/chat/completions", chat("auto"), **{"X-MLX-Latency-Tier": "fast"})
    assert fast.status_code == 200
    assert fast.headers["x-model-routed-to"] == "mlx/tiny-b"


def test_22_unload_bodies_carry_ok_and_resident(gateway: RunningProcess) -> None:
    post(gateway, "/v1/chat/completions", chat("tiny-b"))  # resident now
    dropped = httpx.delete(gateway.url + "/v1/models/tiny-b", headers=AUTH)
    assert dropped.status_code == 200
    body = dropped.json()
    assert (body["ok"], body["unloaded"], body["deferred"]) == (True, True, False)
    assert "tiny-b" not in body["resident"]
    again = httpx.delete(gateway.url + "/v1/models/tiny-b", headers=AUTH)
    assert again.status_code == 404  # not resident any more, as transcript 22 recorded
    error = again.json()["error"]
    assert (error["code"], error["ok"]) == ("model_not_loaded", False)
    assert error["resident"] == body["resident"]
    settled(gateway)


def test_19_debate_runs_on_the_mlx_gateway(gateway: RunningProcess) -> None:
    body = {"models": ["tiny-a", "tiny-b"], "rounds": 1, "judge": "tiny-a", "max_tokens": 6,
            "messages": [{"role": "user", "content": "Is the sky blue?"}]}  # fmt: skip
    answer = post(gateway, "/swarm/debate", body)
    assert answer.status_code == 200, answer.text
    data = answer.json()
    assert data["object"] == "chat.completion"
    assert data["swarm"]["strategy"] == "debate"
    settled(gateway)


def test_grab_mode_as_the_original(models: Path, tmp_path: Path) -> None:
    argv = ["serve", "--grab", str(models / "tiny-b"), "--no-pick-model"]
    with mlx_launcher(argv, tmp_path) as grab:
        listed = httpx.get(grab.url + "/v1/models", headers=AUTH).json()["data"]
        assert [(m["id"], m["owned_by"]) for m in listed] == [("mlx", "mlx-grab")]
        answer = post(grab, "/v1/chat/completions", chat("whatever-the-client-says"))
        assert answer.status_code == 200
        assert answer.headers["x-model-routed-to"] == "mlx-grab/mlx"
        assert answer.json()["model"] == "mlx"
        council = post(grab, "/v1/chat/completions", chat("swarmCouncil"))  # one more name for the one model
        assert council.headers["x-model-routed-to"] == "mlx-grab/mlx"
        for path in ("/swarm/vote", "/swarm/fanout", "/swarm/debate"):
            refused = post(grab, path, {"models": ["mlx"], "messages": [{"role": "user", "content": "hi"}]})
            assert refused.status_code == 503
            assert refused.json()["error"]["code"] == "swarm_disabled_in_grab_mode"
        unload = httpx.delete(grab.url + "/v1/models/mlx", headers=AUTH)
        assert (unload.status_code, unload.json()["error"]["code"]) == (400, "grab_mode")
        settled(grab)


def test_grab_display_name_and_no_grab(models: Path, tmp_path: Path) -> None:
    with mlx_launcher(["serve", "--grab", str(models / "tiny-a"), "--display-name", "house-model"], tmp_path) as grab:
        assert [m["id"] for m in httpx.get(grab.url + "/v1/models", headers=AUTH).json()["data"]] == ["house-model"]
    env = {"MLX_GRAB_MODEL": str(models / "tiny-a"), "MLX_GRAB_DISPLAY_NAME": "from-env", "MLX_MODEL_ROOT": str(models)}
    with mlx_launcher(["serve"], tmp_path, env) as grab:
        assert [m["id"] for m in httpx.get(grab.url + "/v1/models", headers=AUTH).json()["data"]] == ["from-env"]
    with mlx_launcher(["serve", "--no-grab"], tmp_path, env) as multi:
        ids = {m["id"] for m in httpx.get(multi.url + "/v1/models", headers=AUTH).json()["data"]}
        assert {"tiny-a", "tiny-b"} <= ids


def test_grab_from_the_hub_uses_the_grab_cache(models: Path, tmp_path: Path) -> None:
    """``--grab hf:org/name`` serves the copy already in MLX_GRAB_CACHE (org__name) without the hub, and
    fails at start with a sentence (exit 1, no traceback) when it can neither find nor fetch one."""
    import shutil

    cache = tmp_path / "grab-cache"
    shutil.copytree(models / "tiny-a", cache / "acme__tiny-chat")
    offline = {"MLX_GRAB_CACHE": str(cache), "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf")}
    with mlx_launcher(["serve", "--grab", "hf:acme/tiny-chat"], tmp_path, offline) as grab:
        answer = post(grab, "/v1/chat/completions", chat("x"))
        assert (answer.status_code, answer.headers["x-model-routed-to"]) == (200, "mlx-grab/mlx")
    env = {**os.environ, **offline, "HOME": str(tmp_path), "LATTICE_CONFIG": "", "MIDDLE_LAYER_API_KEY": ""}
    failed = subprocess.run([script("local-lattice-mlx"), "serve", "--grab", "hf:acme/absent", "--port", "0"],
                            capture_output=True, text=True, env=env, timeout=120, check=False)  # fmt: skip
    assert failed.returncode == 1
    assert "acme/absent" in failed.stderr
    assert "Traceback" not in failed.stderr


def test_stable_trims_where_mlx_refuses(models: Path, tmp_path: Path) -> None:
    """Transcript 26's long prompt: the stable profile trims old turns (keeping room for the answer
    and MLX_CONTEXT_TRIM_BUFFER=16), the plain one refuses with 400. The tiny models have 512 tokens."""
    old = [{"role": "user", "content": "The quick brown fox jumps over the lazy dog. " * 30},
           {"role": "assistant", "content": "Noted."}] * 3  # fmt: skip
    body = {"model": "tiny-a", "max_tokens": 32, "messages": [*old, {"role": "user", "content": "Hello"}]}
    env = {"MLX_MODEL_ROOT": str(models)}
    with mlx_launcher(["serve", "--profile", "stable"], tmp_path, env) as stable:
        trimmed = post(stable, "/v1/chat/completions", body)
        assert trimmed.status_code == 200, trimmed.text
        assert trimmed.json()["usage"]["prompt_tokens"] <= 512 - 32 - 16
        admission = settled(stable)
        assert (admission["queue_max_per_model"], admission["queue_max_total"]) == (8, 16)  # stable alone is safe
    with mlx_launcher(["serve"], tmp_path, env) as plain:
        refused = post(plain, "/v1/chat/completions", body)
        assert refused.status_code == 400
        assert refused.json()["error"]["code"] == "context_length_exceeded"


def test_start_script_profiles(models: Path, checkout: Path) -> None:
    """The original's ``./scripts/start.sh --profile stable=balanced`` command line."""
    argv = ["bash", str(ROOT / "scripts" / "start.sh"), "--profile", "stable=balanced", "--", "--no-banner"]
    with launch(argv, checkout, {"MLX_MODEL_ROOT": str(models)}) as gateway:
        admission = settled(gateway)
        assert (admission["queue_max_per_model"], admission["queue_max_total"]) == (12, 24)
        assert admission["max_parallel_model_calls"] == 2
        assert post(gateway, "/v1/chat/completions", chat("role:coder")).headers["x-model-routed-to"] == "mlx/tiny-a"
    usage = subprocess.run(["bash", str(ROOT / "scripts" / "start.sh")], capture_output=True, text=True, check=False)
    assert usage.returncode == 2
    assert "--profile" in usage.stderr
