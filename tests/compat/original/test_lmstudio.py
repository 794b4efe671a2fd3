"""The original's LM Studio gateway, replayed: its README's calls, ``scripts/demo.sh``'s flow and its
documented LM Studio behaviour, as black-box HTTP against the real ``local-lattice-lmstudio`` in front
of a scripted LM Studio process (tests/support/lmstudio_server.py) with loaded and not-loaded models.

What the original did and the user relies on: answers say ``X-Model-Routed-To: local/<id>``;
``/v1/models`` carries what LM Studio says of each model; only loaded models are used
(``PREFER_LOADED_MODELS=strict``, its launcher's default) and a miss falls back to a loaded one and
says so; one call per model at a time (``LM_STUDIO_PER_MODEL_INFLIGHT_CAP``, 1); the roles file
``lmstudio_roles.json`` beside it is used. What it did wrong is not replayed: it forwarded the
client's key and cookies to LM Studio."""

from __future__ import annotations

import concurrent.futures
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from openai import OpenAI

from tests.support.launchers import AUTH, KEY, lmstudio_launcher, settled
from tests.support.lmstudio_server import lmstudio_server
from tests.support.procs import RunningProcess

pytestmark = pytest.mark.slow

FAST, CODER, BIG, VISION, EMBED = (
    "qwen2.5-7b-instruct",
    "qwen2.5-coder-14b-instruct",
    "llama-3.3-70b-instruct",
    "qwen2-vl-7b-instruct",
    "text-embedding-nomic-embed-text-v1.5",
)
MODELS: list[dict[str, Any]] = [
    {"id": FAST, "state": "loaded"},
    {"id": CODER, "state": "loaded", "delay": 0.3, "publisher": "Qwen", "quantization": "Q8_0"},
    {"id": BIG, "state": "not-loaded", "arch": "llama", "max_context_length": 131072},
    {"id": VISION, "type": "vlm", "state": "not-loaded", "arch": "qwen2_vl", "compatibility_type": "mlx"},
    {"id": EMBED, "type": "embeddings", "state": "loaded", "arch": "nomic-bert"},
]
# The original's lmstudio_roles.json form: LM Studio's short ids, the loaded ones first, a _comment.
ROLES = {
    "_comment": "roles for the LM Studio gateway, short ids as /v1/models lists them",
    "fast": [FAST],
    "coder": ["qwen2.5-coder", "coder"],
    "reasoner": ["llama-3.3-70b", "qwen2.5-coder"],
    "vision": ["qwen2-vl"],
    "default": [FAST],
}


def chat_body(model: str, text: str = "ping", **extra: Any) -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": text}], **extra}


def stats(studio: RunningProcess) -> dict[str, Any]:
    data: dict[str, Any] = httpx.get(studio.url + "/__script__/stats").json()
    return data


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("checkout")
    (folder / "lmstudio_roles.json").write_text(json.dumps(ROLES))
    return folder


@pytest.fixture(scope="module")
def studio() -> Iterator[RunningProcess]:
    with lmstudio_server(MODELS) as proc:
        yield proc


@pytest.fixture(scope="module")
def gateway(studio: RunningProcess, workdir: Path) -> Iterator[RunningProcess]:
    with lmstudio_launcher(studio.url, workdir) as proc:
        yield proc


def test_models_pass_lm_studios_fields_through(gateway: RunningProcess) -> None:
    # README: curl -sS -H "X-API-Key: $MIDDLE_LAYER_API_KEY" http://127.0.0.1:5000/v1/models
    assert httpx.get(gateway.url + "/v1/models").status_code == 401
    listed = httpx.get(gateway.url + "/v1/models", headers=AUTH)
    assert listed.status_code == 200
    body = listed.json()
    assert body["object"] == "list"
    by_id = {m["id"]: m for m in body["data"]}
    assert list(by_id) == [FAST, CODER, BIG, VISION, EMBED]
    coder, big = by_id[CODER], by_id[BIG]
    assert (coder["object"], coder["owned_by"], coder["loaded"]) == ("model", "local", True)
    assert (coder["publisher"], coder["quantization"], coder["state"], coder["type"]) == (
        "Qwen",
        "Q8_0",
        "loaded",
        "llm",
    )
    assert (big["state"], big["loaded"], big["arch"], big["max_context_length"]) == (
        "not-loaded",
        False,
        "llama",
        131072,
    )
    assert by_id[VISION]["type"] == "vlm"
    assert (by_id[EMBED]["type"], by_id[EMBED]["kind"]) == ("embeddings", "embedding")


def test_readme_chat_is_routed_to_local(gateway: RunningProcess) -> None:
    # README: POST /v1/chat/completions {"model":"role:fast","messages":[{"role":"user","content":"ping"}]}
    answer = httpx.post(gateway.url + "/v1/chat/completions", json=chat_body("role:fast"), headers=AUTH, timeout=30)
    assert answer.status_code == 200
    assert answer.headers["x-model-routed-to"] == f"local/{FAST}"
    body = answer.json()
    assert (body["object"], body["model"]) == ("chat.completion", FAST)
    assert body["choices"][0]["message"]["content"] == f"[{FAST}] ping"
    for name in ("resolve", "queue", "upstream", "total"):
        assert float(answer.headers[f"x-lattice-{name}-ms"]) >= 0


def test_the_openai_client_with_bearer_auth(gateway: RunningProcess) -> None:
    # README "Copy-paste examples" 1: the OpenAI client at :5000/v1, model role:coder.
    client = OpenAI(base_url=gateway.url + "/v1", api_key=KEY)
    resp = client.chat.completions.create(
        model="role:coder", messages=[{"role": "user", "content": "Reverse a string in Python."}], max_tokens=2000
    )
    assert resp.model == CODER
    assert resp.choices[0].message.content == f"[{CODER}] Reverse a string in Python."
    stream = client.chat.completions.create(
        model="role:coder", messages=[{"role": "user", "content": "one two three"}], stream=True
    )
    text = "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices)
    assert text == f"[{CODER}] one two three"


def test_demo_script_flow(gateway: RunningProcess, studio: RunningProcess) -> None:
    """scripts/demo.sh: the models, the same call to role:fast and role:coder (two different loaded
    models answer), then /swarm/vote over the loaded set."""
    ids = [m["id"] for m in httpx.get(gateway.url + "/v1/models", headers=AUTH).json()["data"]]
    assert len(ids) == 5
    answered = {}
    for role in ("role:fast", "role:coder"):
        body = chat_body(role, "In one short sentence: why is the sky blue?", max_tokens=2000)
        reply = httpx.post(gateway.url + "/v1/chat/completions", json=body, headers=AUTH, timeout=60).json()
        assert "error" not in reply
        answered[role] = reply["model"]
        assert reply["choices"][0]["message"]["content"].strip()
    assert answered == {"role:fast": FAST, "role:coder": CODER}
    vote = {
        "models": "auto",
        "messages": [{"role": "user", "content": "Best name for a coffee-shop wifi network? One suggestion."}],
        "max_tokens": 2000,
    }
    answer = httpx.post(gateway.url + "/swarm/vote", json=vote, headers=AUTH, timeout=120)
    assert answer.status_code == 200, answer.text
    data = answer.json()
    candidates = {c["model"] for c in data["swarm"]["candidates"]}
    assert candidates == {FAST, CODER}  # the loaded chat models: never the embedding model, never a JIT load
    assert all(c["ok"] for c in data["swarm"]["candidates"])
    assert data["swarm"]["winner"] in candidates
    assert data["choices"][0]["message"]["content"].startswith(f"[{data['swarm']['winner']}]")
    assert stats(studio)["jit_loads"] == []
    settled(gateway)


def test_readme_pipeline_and_fanout(gateway: RunningProcess, studio: RunningProcess) -> None:
    # README "Copy-paste examples" 3 (plan -> code -> review) and the /swarm/fanout route, over LM Studio.
    steps = [
        {
            "name": "plan",
            "model": "role:reasoner",
            "system": "Outline the approach in bullet points.",
            "max_tokens": 512,
        },
        {"name": "code", "model": "role:coder", "system": "Implement this plan:\n\n{{plan}}"},
        {"name": "review", "model": "role:reasoner", "system": "Critique and suggest fixes:\n\n{{code}}"},
    ]
    body = {"messages": [{"role": "user", "content": "Build a CLI that counts words in a file."}], "steps": steps,
            "max_tokens": 2000}  # fmt: skip
    answer = httpx.post(gateway.url + "/swarm/pipeline", json=body, headers=AUTH, timeout=120)
    assert answer.status_code == 200, answer.text
    data = answer.json()
    assert data["object"] == "chat.completion"
    history = data["swarm"]["history"]
    assert [h["name"] for h in history] == ["plan", "code", "review"]
    # role:reasoner's first choice (the 70B) is not loaded: strict loading takes its next one, loaded.
    assert [h["model"] for h in history] == [CODER, CODER, CODER]
    fanout = {"models": "auto", "messages": [{"role": "user", "content": "hello"}], "max_tokens": 2000}
    answer = httpx.post(gateway.url + "/swarm/fanout", json=fanout, headers=AUTH, timeout=120)
    assert answer.status_code == 200, answer.text
    assert answer.json()["object"] == "swarm.fanout"
    assert stats(studio)["jit_loads"] == []
    settled(gateway)


def test_swarm_council_through_the_chat_api(gateway: RunningProcess) -> None:
    # README "Copy-paste examples" 4: model swarmCouncil with extra_body swarm options.
    client = OpenAI(base_url=gateway.url + "/v1", api_key=KEY)
    raw = client.chat.completions.with_raw_response.create(
        model="swarmCouncil",
        messages=[{"role": "user", "content": "Pros and cons of SQLite for a side project?"}],
        max_tokens=2000,
        extra_body={"swarm": {"models": "auto", "strategy": "best-of-n", "judge": "role:reasoner"}},
    )
    resp = raw.parse()
    assert raw.headers["x-model-routed-to"].removeprefix("swarm/") in (FAST, CODER)
    assert resp.choices[0].message.content


def test_strict_loading_falls_back_to_a_loaded_model_and_says_so(
    gateway: RunningProcess, studio: RunningProcess
) -> None:
    answer = httpx.post(gateway.url + "/v1/chat/completions", json=chat_body(BIG), headers=AUTH, timeout=30)
    assert answer.status_code == 200
    assert answer.headers["x-model-routed-to"] in (f"local/{FAST}", f"local/{CODER}")
    assert f"fallback (requested '{BIG}', not loaded)" in answer.headers["x-model-resolution"]
    assert stats(studio)["jit_loads"] == []  # LM Studio was never asked to load the 70B behind the user's back


def test_embeddings_reach_the_embedding_model(gateway: RunningProcess) -> None:
    body = {"model": "nomic-embed", "input": ["a", "bb"]}
    answer = httpx.post(gateway.url + "/v1/embeddings", json=body, headers=AUTH, timeout=30)
    assert answer.status_code == 200
    assert answer.headers["x-model-routed-to"] == f"local/{EMBED}"
    assert [row["embedding"][0] for row in answer.json()["data"]] == [1.0, 2.0]


def test_client_credentials_never_reach_lm_studio(gateway: RunningProcess, studio: RunningProcess) -> None:
    headers = {**AUTH, "Cookie": "session=the-users-own", "Authorization": f"Bearer {KEY}"}
    answer = httpx.post(gateway.url + "/v1/chat/completions", json=chat_body(FAST, "secret?"), headers=headers)
    assert answer.status_code == 200
    seen = {k.lower(): v for k, v in stats(studio)["headers"][-1].items()}
    assert "cookie" not in seen
    assert "x-api-key" not in seen
    assert KEY not in json.dumps(seen)


def test_calls_to_one_model_run_one_at_a_time(gateway: RunningProcess, studio: RunningProcess) -> None:
    def call(i: int) -> httpx.Response:
        body = chat_body(CODER, f"job {i}")
        return httpx.post(gateway.url + "/v1/chat/completions", json=body, headers=AUTH, timeout=60)

    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(call, range(4)))
    assert [a.status_code for a in answers] == [200] * 4
    assert stats(studio)["models"][CODER]["max_in_flight"] == 1  # LM_STUDIO_PER_MODEL_INFLIGHT_CAP's default
    assert max(float(a.headers["x-lattice-queue-ms"]) for a in answers) >= 250  # the last waited for the others
    settled(gateway)


def test_a_client_that_leaves_mid_stream_frees_everything(gateway: RunningProcess, studio: RunningProcess) -> None:
    body = chat_body(CODER, " ".join(["word"] * 60), stream=True)
    with httpx.stream("POST", gateway.url + "/v1/chat/completions", json=body, headers=AUTH, timeout=30) as resp:
        assert resp.status_code == 200
        assert resp.headers["x-model-routed-to"] == f"local/{CODER}"
        next(resp.iter_lines())
    deadline = time.monotonic() + 10
    while stats(studio)["models"][CODER]["in_flight"] and time.monotonic() < deadline:
        time.sleep(0.05)
    assert stats(studio)["models"][CODER]["in_flight"] == 0
    settled(gateway)
    follow = httpx.post(gateway.url + "/v1/chat/completions", json=chat_body(CODER, "after"), headers=AUTH, timeout=30)
    assert follow.json()["choices"][0]["message"]["content"] == f"[{CODER}] after"


def test_the_cap_and_a_model_loaded_behind_the_gateways_back(tmp_path: Path) -> None:
    """LM_STUDIO_PER_MODEL_INFLIGHT_CAP=2 lets two calls in at once (with the profile's global
    MAX_PARALLEL_MODEL_CALLS=1 raised too: the environment wins); a model LM Studio loads later is used
    once the model list is refreshed (MODEL_LIST_TTL)."""
    env = {
        "LM_STUDIO_PER_MODEL_INFLIGHT_CAP": "2",
        "MAX_PARALLEL_MODEL_CALLS": "4",
        "MODEL_LIST_TTL": "1",
        "ON_MODEL_MISS": "error",
    }
    with lmstudio_server(MODELS) as lms, lmstudio_launcher(lms.url, tmp_path, env) as gateway:
        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            list(pool.map(lambda i: httpx.post(gateway.url + "/v1/chat/completions",
                                               json=chat_body(CODER, str(i)), headers=AUTH, timeout=60),
                          range(4)))  # fmt: skip
        assert stats(lms)["models"][CODER]["max_in_flight"] == 2
        missing = httpx.post(gateway.url + "/v1/chat/completions", json=chat_body(BIG), headers=AUTH, timeout=30)
        assert missing.status_code == 404
        error = missing.json()["error"]
        assert error["code"] == "model_not_found"
        assert "STRICT_LOADED_MODELS" in error["message"]
        assert sorted(error["loaded"]) == sorted([FAST, CODER])
        httpx.post(lms.url + "/__script__/state", json={"id": BIG, "state": "loaded"})
        deadline = time.monotonic() + 8  # the list is reused for MODEL_LIST_TTL, the inventory for 2 s more
        while True:
            found = httpx.post(gateway.url + "/v1/chat/completions", json=chat_body(BIG), headers=AUTH, timeout=30)
            if found.status_code == 200 or time.monotonic() > deadline:
                break
            time.sleep(0.25)
        assert found.status_code == 200
        assert found.headers["x-model-routed-to"] == f"local/{BIG}"
        assert stats(lms)["jit_loads"] == []


def test_an_lm_studio_without_its_own_model_list(tmp_path: Path) -> None:
    """Older LM Studio builds answer 404 on /api/v0: every listed model counts, as the original did."""
    with lmstudio_server(MODELS, old=True) as lms, lmstudio_launcher(lms.url, tmp_path) as gateway:
        listed = httpx.get(gateway.url + "/v1/models", headers=AUTH).json()["data"]
        assert [(m["id"], m["loaded"], m["owned_by"]) for m in listed][:2] == [
            (FAST, None, "local"),
            (CODER, None, "local"),
        ]
        answer = httpx.post(gateway.url + "/v1/chat/completions", json=chat_body(BIG), headers=AUTH, timeout=30)
        assert answer.headers["x-model-routed-to"] == f"local/{BIG}"
        assert answer.status_code == 200


def test_lm_studio_going_away_is_a_clear_error_not_a_hang(tmp_path: Path) -> None:
    with lmstudio_server(MODELS) as lms, lmstudio_launcher(lms.url, tmp_path) as gateway:
        assert httpx.post(gateway.url + "/v1/chat/completions", json=chat_body(FAST), headers=AUTH).status_code == 200
        lms.proc.terminate()
        lms.proc.wait(timeout=10)
        answer = httpx.post(gateway.url + "/v1/chat/completions", json=chat_body(FAST), headers=AUTH, timeout=30)
        assert answer.status_code in (502, 503)
        assert set(answer.json()["error"]) >= {"message", "type", "code"}
        settled(gateway)


def test_the_alias_and_the_profile_are_the_same_gateway(studio: RunningProcess, workdir: Path) -> None:
    """``middle-layer-lmstudio`` and ``lattice serve --profile lmstudio`` (the original's
    ``scripts/start.sh --profile lmstudio``) answer as ``local-lattice-lmstudio`` does."""
    from tests.support.launchers import launch, script

    with lmstudio_launcher(studio.url, workdir, name="middle-layer-lmstudio") as alias:
        routed = httpx.post(alias.url + "/v1/chat/completions", json=chat_body("role:coder"), headers=AUTH, timeout=30)
        assert routed.headers["x-model-routed-to"] == f"local/{CODER}"
    argv = [script("lattice"), "serve", "--profile", "lmstudio", "--no-banner"]
    with launch(argv, workdir, {"LM_STUDIO_URL": studio.url}) as profile:
        routed = httpx.post(
            profile.url + "/v1/chat/completions", json=chat_body("role:coder"), headers=AUTH, timeout=30
        )
        assert routed.headers["x-model-routed-to"] == f"local/{CODER}"
