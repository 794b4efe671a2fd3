"""The original's documented examples, replayed black-box as its users wrote them from its docs: the
README's curl calls and Python snippets, ``llms.txt``'s request bodies, ``docs/capabilities.md``'s
swarm contracts and ``scripts/demo.sh``'s flow. They run against the real gateway over a scripted
upstream process with three role models (``fast-model``, ``coder-model``, ``reasoner-model``)
and some that misbehave, through the official ``openai`` client where the docs used it."""

from __future__ import annotations

import httpx
import openai
import orjson
import pytest

from tests.compat.original.conftest import KEY, SCRIPTED_MODELS, settled
from tests.support.procs import RunningProcess

pytestmark = pytest.mark.slow

ROLE_MODELS = {"role:fast": "fast-model", "role:coder": "coder-model", "role:reasoner": "reasoner-model"}
# The loaded chat models "auto" stands for, without the slow one (it answers five seconds late).
AUTO = [m for m in SCRIPTED_MODELS if m != "hang"]


def user(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


@pytest.fixture(scope="module")
def client(scripted_gateway: RunningProcess) -> openai.OpenAI:
    return openai.OpenAI(base_url=scripted_gateway.url + "/v1", api_key=KEY, max_retries=0)


# --- README -------------------------------------------------------------------------------------


def test_readme_curl_models(scripted: httpx.Client) -> None:
    data = scripted.get("/v1/models").json()["data"]
    assert [m["id"] for m in data] == SCRIPTED_MODELS


def test_readme_curl_chat_role_fast(scripted: httpx.Client) -> None:
    response = scripted.post("/v1/chat/completions", json={"model": "role:fast", "messages": user("ping")})
    assert response.status_code == 200, response.text
    assert response.json()["model"] == "fast-model"


def test_readme_single_capability_route(client: openai.OpenAI) -> None:
    resp = client.chat.completions.create(
        model="role:coder", messages=user("Reverse a string in Python."), max_tokens=2000
    )  # type: ignore[arg-type]
    assert resp.model == "coder-model"  # "concrete model id that answered — log this"
    assert resp.choices[0].message.content


def test_readme_judged_second_opinion(scripted: httpx.Client) -> None:
    body = {
        "models": AUTO,
        "strategy": "best-of-n",
        "judge": "role:reasoner",
        "messages": user("Name a coffee-shop WiFi network."),
        "max_tokens": 2000,
    }
    data = scripted.post("/swarm/vote", json=body).json()
    assert data["swarm"]["winner"] in AUTO
    assert data["choices"][0]["message"]["content"]


def test_readme_plan_code_review_pipeline(scripted: httpx.Client) -> None:
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
    body = {"messages": user("Build a CLI that counts words in a file."), "steps": steps, "max_tokens": 2000}
    response = scripted.post("/swarm/pipeline", json=body)
    assert response.status_code == 200, response.text
    history = response.json()["swarm"]["history"]
    assert [(h["name"], h["model"]) for h in history] == [
        ("plan", "reasoner-model"), ("code", "coder-model"), ("review", "reasoner-model")
    ]  # fmt: skip
    assert response.headers["x-swarm-steps"] == "plan,code,review"


def test_readme_openai_client_shortcut(client: openai.OpenAI) -> None:
    resp = client.chat.completions.create(
        model="swarmCouncil",
        messages=user("Pros and cons of SQLite for a side project?"),  # type: ignore[arg-type]
        max_tokens=2000,
        extra_body={"swarm": {"models": "auto", "strategy": "best-of-n", "judge": "role:reasoner"}},
    )
    assert resp.model.startswith("swarm/")
    assert resp.choices[0].message.content


# --- scripts/demo.sh ----------------------------------------------------------------------------


def test_demo_flow(scripted: httpx.Client) -> None:
    """Its four steps: list models, the same code at role:fast and role:coder (two different models
    answer), then /swarm/vote over the loaded set with a judge."""
    ids = [m["id"] for m in scripted.get("/v1/models").json()["data"]]
    assert len(ids) == len(SCRIPTED_MODELS)
    answered = []
    for role in ("role:fast", "role:coder"):
        body = {"model": role, "max_tokens": 2000, "messages": user("In one short sentence: why is the sky blue?")}
        data = scripted.post("/v1/chat/completions", json=body).json()
        assert "error" not in data
        assert data["choices"][0]["message"]["content"].strip()
        answered.append(data["model"])
    assert answered == ["fast-model", "coder-model"]
    body = {"models": "auto", "messages": user("Best name for a coffee-shop wifi network?"), "max_tokens": 2000}
    data = scripted.post("/swarm/vote", json=body).json()
    assert "error" not in data
    swarm = data["swarm"]
    assert {c["model"] for c in swarm["candidates"]} == set(SCRIPTED_MODELS)
    assert [c["ok"] for c in swarm["candidates"] if c["model"] in ("boom-500", "empty")] == [False, False]
    assert swarm["winner"] in SCRIPTED_MODELS
    assert data["choices"][0]["message"]["content"].strip()
    assert settled(scripted) == {"inflight": 0, "queued": 0}


# --- llms.txt -----------------------------------------------------------------------------------


def test_llms_discover_first(scripted: httpx.Client) -> None:
    assert scripted.get("/v1/models").json()["data"][0]["id"]
    swarm_models = scripted.get("/swarm/models").json()
    assert swarm_models["models"] == SCRIPTED_MODELS
    assert swarm_models["roles"]["reasoner"] == ["reasoner-model"]
    health = scripted.get("/healthz").json()  # "loaded models, strict policy, swarm config"
    assert {"lmstudio_loaded_models", "strict_loaded_models", "swarm_chat_default_models"} <= health.keys()


def test_llms_chat_stream(scripted: httpx.Client) -> None:
    body = {"model": "role:coder", "messages": user("..."), "max_tokens": 2000, "stream": True}
    with scripted.stream("POST", "/v1/chat/completions", json=body) as response:
        lines = [line for line in response.iter_lines() if line.startswith("data: ")]
    assert lines[-1] == "data: [DONE]"
    assert orjson.loads(lines[0][6:])["object"] == "chat.completion.chunk"


def test_llms_fanout(scripted: httpx.Client) -> None:
    body = {"models": AUTO[:3], "messages": user("..."), "max_tokens": 2000}
    data = scripted.post("/swarm/fanout", json=body).json()
    assert data["object"] == "swarm.fanout"
    assert [(r["model"], r["ok"], r["text"]) for r in data["responses"]] == [
        ("fast-model", True, "ok"), ("coder-model", True, "ok"), ("reasoner-model", True, "ok")
    ]  # fmt: skip
    assert all(isinstance(r["latency_ms"], int) for r in data["responses"])


@pytest.mark.parametrize("strategy", ["best-of-n", "first-success", "longest"])
def test_llms_vote(scripted: httpx.Client, strategy: str) -> None:
    body = {"models": ["fast-model", "echo"], "messages": user("..."), "strategy": strategy, "judge": "role:reasoner"}
    data = scripted.post("/swarm/vote", json={**body, "max_tokens": 2000}).json()
    assert data["object"] == "chat.completion"
    swarm = data["swarm"]
    assert swarm.keys() >= {"strategy", "winner", "rationale", "candidates"}
    assert (swarm["strategy"], data["model"]) == (strategy, f"swarm/{swarm['winner']}")


def test_llms_debate(scripted: httpx.Client) -> None:
    body = {"models": ["fast-model", "coder-model"], "messages": user("..."), "rounds": 2, "judge": "role:reasoner"}
    response = scripted.post("/swarm/debate", json=body)
    assert response.status_code == 200, response.text
    assert (response.json()["swarm"]["rounds"], response.headers["x-swarm-rounds"]) == (2, "2")
    assert response.json()["model"] == "swarm/debate/reasoner-model"


@pytest.mark.parametrize("stream", [False, True])
def test_llms_swarm_via_plain_chat(scripted: httpx.Client, stream: bool) -> None:
    swarm = {"models": ["fast-model", "coder-model"], "strategy": "first-success", "max_parallel": 2}
    body = {"model": "swarmCouncil", "messages": user("..."), "swarm": swarm, "stream": stream}
    response = scripted.post("/v1/chat/completions", json=body)
    assert response.status_code == 200, response.text
    assert response.headers["x-swarm-intent"] == "council"
    if stream:
        assert response.text.rstrip().endswith("data: [DONE]")
    else:
        assert response.json()["swarm"]["strategy"] == "first-success"


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/swarm/vote", {"messages": user("...")}),
        ("/swarm/fanout", {"models": "auto"}),
        ("/v1/chat/completions", {"model": "swarm/pipeline", "messages": user("...")}),
    ],
    ids=["no-models", "no-messages", "pipeline-on-chat"],
)
def test_llms_error_contract_400(scripted: httpx.Client, path: str, body: dict[str, object]) -> None:
    response = scripted.post(path, json=body)
    assert response.status_code == 400
    assert response.json()["error"]["type"] == "invalid_request_error"


def test_llms_error_contract_401(scripted_gateway: RunningProcess) -> None:
    assert httpx.post(scripted_gateway.url + "/swarm/vote", json={}).status_code == 401


# --- docs/capabilities.md -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "intent"),
    [("swarmCouncil", "council"), ("swarmVote", "council"), ("swarm/vote", "council"),
     ("swarmIntelligence", "council"), ("swarm/fanout", "fanout")],
)  # fmt: skip
def test_capabilities_chat_meta_models(scripted: httpx.Client, model: str, intent: str) -> None:
    swarm = {"models": ["fast-model", "coder-model"], "judge": "role:reasoner"}
    response = scripted.post("/v1/chat/completions", json={"model": model, "messages": user("..."), "swarm": swarm})
    assert response.status_code == 200, response.text
    winner = response.json()["swarm"]["winner"]
    assert response.headers["x-model-routed-to"] == f"swarm/{winner}"
    assert response.headers["x-swarm-intent"] == intent


def test_capabilities_fanout_resolves_each_entry_alone(scripted: httpx.Client) -> None:
    body = {"models": ["role:coder", "qwen3-coder-32b", "anthropic-claude-4.6-opus"], "messages": user("..."),
            "max_parallel": 3}  # fmt: skip
    response = scripted.post("/swarm/fanout", json=body)
    assert response.status_code == 200, response.text  # unresolved entries fail in their slot only
    rows = response.json()["responses"]
    assert [(r["agent_id"], r["ok"], r["error_kind"]) for r in rows] == [
        ("role:coder", True, None),
        ("qwen3-coder-32b", False, "model_not_resolved"),
        ("anthropic-claude-4.6-opus", False, "model_not_resolved"),
    ]


def test_capabilities_vote_and_debate_over_roles(scripted: httpx.Client) -> None:
    roles = ["role:reasoner", "role:coder", "role:fast"]
    vote = scripted.post("/swarm/vote", json={"models": roles, "judge": "role:reasoner", "messages": user("...")})
    assert vote.status_code == 200, vote.text
    assert [c["model"] for c in vote.json()["swarm"]["candidates"]] == ["reasoner-model", "coder-model", "fast-model"]
    body = {"models": ["role:reasoner", "role:fast", "role:coder"], "messages": user("..."), "rounds": 2,
            "judge": "role:reasoner"}  # fmt: skip
    debate = scripted.post("/swarm/debate", json=body)
    assert debate.status_code == 200, debate.text
    assert len(debate.json()["swarm"]["transcript"]) == 6


def test_capabilities_per_agent_error_metadata(scripted: httpx.Client) -> None:
    swarm = {"models": ["role:fast", "boom-500"], "strategy": "best-of-n", "judge": "role:reasoner"}
    body = {"model": "swarmCouncil", "messages": user("..."), "swarm": swarm}
    candidates = scripted.post("/v1/chat/completions", json=body).json()["swarm"]["candidates"]
    failed = candidates[1]
    assert failed.keys() >= {
        "agent_id",
        "model",
        "ok",
        "error_kind",
        "http_status",
        "error_detail",
        "latency_ms",
        "error",
    }
    # Ours: agent_id is the agent's slot (unique when two agents name one spec); the verbatim spec
    # the original put there is in ``spec`` (and in /swarm/fanout's responses[], in agent_id).
    assert [c["spec"] for c in candidates] == ["role:fast", "boom-500"]
    assert (failed["model"], failed["ok"], failed["error_kind"], failed["http_status"]) == (
        "boom-500", False, "upstream_5xx", 500
    )  # fmt: skip
    assert isinstance(failed["error_detail"], str)
    assert failed["error"]


def test_capabilities_all_failed_502(scripted: httpx.Client) -> None:
    body = {"model": "swarmCouncil", "messages": user("..."), "swarm": {"models": ["boom-500", "empty"]}}
    response = scripted.post("/v1/chat/completions", json=body)
    assert response.status_code == 502
    details = response.json()["error_details"]
    assert details.keys() >= {"summary", "agent_count", "kinds", "upstream_statuses", "agents"}
    assert (details["kinds"], details["upstream_statuses"]) == ({"upstream_5xx": 1, "empty_response": 1}, {"500": 1})
    assert response.headers["x-swarm-error-kinds"] == "empty_response=1,upstream_5xx=1"
