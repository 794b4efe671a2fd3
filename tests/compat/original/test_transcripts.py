"""The original's 27 recorded request/response captures (its ``docs/_internal/baseline/``), replayed in
their order against the real gateway over the in-process SmolLM2 engine, set up as they were taken.

Each test names its capture. The assertions are the original's statuses, headers and field names;
where a capture recorded something we do differently on purpose, the test says so and asserts ours:
``/healthz`` answers without a key (minimal), errors are OpenAI's envelope (the original's fields
inside it), and capture 15 (a model that failed to load on the recording machine) and 26 (a prompt
far beyond the context, answered with garbage) show what we do instead. The tests run in file order:
the captures were a sequence.
"""

from __future__ import annotations

import httpx
import orjson
import pytest

from tests.compat.original.conftest import KEY, MODEL

pytestmark = pytest.mark.slow

USER = "user"

# Field names of the original's documents, as its captures show them.
HEALTH_FIELDS = {
    "ok", "mlx_available", "mlx_root", "mlx_models", "mlx_loaded", "memory", "model_roles", "default_model",
    "max_parallel", "swarm_fanout_timeout_sec", "swarm_fanout_budget_example_sec", "on_model_miss",
    "anthropic_enabled", "anthropic_model", "swarm_chat_enabled", "swarm_chat_default_models",
    "swarm_chat_default_strategy", "dashboard", "model_profiles_file", "mlx_per_model_admission_cap_legacy",
    "mlx_per_model_inflight_cap", "mlx_queue_max_per_model", "mlx_queue_max_total", "mlx_queue_wait_timeout_sec",
    "mlx_context_over_budget", "generation_timeout_sec", "admission",
}  # fmt: skip
ADMISSION_FIELDS = {
    "enabled", "inflight_cap_per_model", "queue_max_per_model", "queue_max_total", "inflight_total",
    "queued_total", "inflight_by_alias", "queued_by_alias",
}  # fmt: skip
SWARM_MODELS_FIELDS = {
    "models", "loaded", "roles", "default_model", "max_parallel", "max_concurrent_models", "anthropic_available",
    "anthropic_model", "swarm_chat_enabled", "swarm_chat_default_models", "swarm_chat_default_strategy",
}  # fmt: skip
SNAPSHOT_FIELDS = {
    "dashboard_enabled", "note", "mlx_available", "grab_mode", "mlx_root", "models_available", "models_loaded",
    "memory", "active_by_alias", "events", "preferences", "config",
}  # fmt: skip
SNAPSHOT_CONFIG_FIELDS = {
    "model_roles", "default_model_env", "max_concurrent_models", "max_parallel_model_calls",
    "swarm_fanout_timeout_sec", "swarm_fanout_budget_example_sec", "anthropic_enabled", "admission",
}  # fmt: skip
DASH_CONFIG_FIELDS = SNAPSHOT_CONFIG_FIELDS | {
    "dashboard_enabled", "preview_chars", "max_events", "capture_prompts", "max_prompt_chars", "note",
}  # fmt: skip
EVENT_FIELDS = {
    "request_id", "parent_request_id", "agent_slot", "route_kind", "requested_model", "resolved_model", "backend",
    "stream", "prompt_tokens", "completion_tokens", "total_tokens", "latency_ms", "tokens_per_sec", "status",
    "error", "preview", "ts",
}  # fmt: skip
ROW_FIELDS = {"model", "ok", "error", "latency_ms", "response", "text"}


def chat_body(content: str, **extra: object) -> dict[str, object]:
    return {"model": MODEL, "messages": [{"role": USER, "content": content}], "max_tokens": 8, **extra}


def assert_legacy_timing(response: httpx.Response, *, stream: bool = False) -> None:
    """The original's two timing headers, whole milliseconds (streams sent only the queue wait)."""
    assert response.headers["x-mlx-queue-wait-ms"].isdigit()
    if not stream:
        assert response.headers["x-mlx-latency-ms"].isdigit()


def test_01_healthz_without_a_key_is_public_and_minimal(engine: httpx.Client) -> None:
    # Deliberate difference: the original answered 401; ours answers, and says nothing more.
    response = httpx.get(engine.base_url.join("/healthz"))
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "ok": True}


def test_02_models_without_a_key_is_401(engine: httpx.Client) -> None:
    response = httpx.get(engine.base_url.join("/v1/models"))
    assert response.status_code == 401
    assert response.json()["error"]["type"] == "authentication_error"  # OpenAI's envelope around the error


def test_03_healthz_with_the_key_is_the_full_state(engine: httpx.Client) -> None:
    response = engine.get("/healthz")
    assert response.status_code == 200
    body = response.json()
    assert body.keys() >= HEALTH_FIELDS
    assert body["admission"].keys() >= ADMISSION_FIELDS
    assert (body["ok"], body["mlx_available"], body["mlx_models"], body["mlx_loaded"]) == (True, True, [MODEL], [])
    assert body["memory"] == {"loaded": [], "count": 0, "max": 1}
    assert (body["default_model"], body["on_model_miss"], body["max_parallel"]) == (MODEL, "fallback", 1)
    assert body["model_roles"]["fast"] == [MODEL]
    assert (body["mlx_per_model_inflight_cap"], body["generation_advisory_timeout_sec"]) == (1, 300.0)
    assert body["anthropic_enabled"] is False
    assert body["dashboard"] == "http://<host>:<port>/dashboard/"


def test_04_models_lists_every_model_with_owned_by(engine: httpx.Client) -> None:
    body = engine.get("/v1/models").json()
    assert body["object"] == "list"
    (card,) = body["data"]
    assert {"id", "object", "created", "owned_by"} <= card.keys()
    assert (card["id"], card["object"], card["owned_by"]) == (MODEL, "model", "mlx")


def test_05_swarm_models(engine: httpx.Client) -> None:
    body = engine.get("/swarm/models").json()
    assert body.keys() >= SWARM_MODELS_FIELDS
    assert (body["models"], body["loaded"], body["default_model"]) == ([MODEL], [], MODEL)
    assert (body["max_parallel"], body["max_concurrent_models"], body["anthropic_available"]) == (1, 1, False)


def test_06_cold_dashboard_snapshot(engine: httpx.Client) -> None:
    snap = engine.get("/dashboard/api/snapshot").json()
    assert snap.keys() >= SNAPSHOT_FIELDS
    assert snap["config"].keys() >= SNAPSHOT_CONFIG_FIELDS
    assert (snap["models_available"], snap["models_loaded"], snap["events"]) == ([MODEL], [], [])
    assert snap["memory"] == {"loaded": [], "count": 0, "max": 1}
    assert snap["preferences"]["default_model"] is None
    assert snap["config"]["admission"]["inflight_total"] == 0


def test_07_dashboard_config(engine: httpx.Client) -> None:
    config = engine.get("/dashboard/api/config").json()
    assert config.keys() >= DASH_CONFIG_FIELDS
    assert config["admission"].keys() >= ADMISSION_FIELDS
    assert (config["max_events"], config["capture_prompts"], config["max_parallel_model_calls"]) == (8, False, 1)


def test_08_dashboard_page_needs_no_key(engine: httpx.Client) -> None:
    response = httpx.get(engine.base_url.join("/dashboard/"))
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")


def test_09_bearer_key_works_too(engine: httpx.Client) -> None:
    response = httpx.get(engine.base_url.join("/healthz"), headers={"Authorization": f"Bearer {KEY}"})
    assert response.status_code == 200
    assert response.json().keys() >= HEALTH_FIELDS


def test_10_a_preflight_without_cors_and_key_is_401(engine: httpx.Client) -> None:
    response = httpx.options(engine.base_url.join("/v1/chat/completions"))
    assert response.status_code == 401


def test_11_chat_completion(engine: httpx.Client) -> None:
    response = engine.post("/v1/chat/completions", json=chat_body("Reply with the single word: PONG"))
    assert response.status_code == 200, response.text
    assert response.headers["x-model-routed-to"] == f"mlx/{MODEL}"
    assert_legacy_timing(response)
    body = response.json()
    assert (body["object"], body["model"]) == ("chat.completion", MODEL)
    assert body["choices"][0]["message"]["role"] == "assistant"
    assert body["choices"][0]["message"]["content"]
    assert body["choices"][0]["finish_reason"] in ("stop", "length")
    usage = body["usage"]
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"] > 0


def test_12_chat_stream(engine: httpx.Client) -> None:
    with engine.stream("POST", "/v1/chat/completions", json=chat_body("Reply with: HELLO WORLD", stream=True)) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        assert r.headers["x-model-routed-to"] == f"mlx/{MODEL}"
        assert_legacy_timing(r, stream=True)
        events = [line[6:] for line in r.iter_lines() if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    chunks = [orjson.loads(e) for e in events[:-1]]
    assert all(c["object"] == "chat.completion.chunk" and c["model"] == MODEL for c in chunks)
    assert "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    assert any(c["choices"] and c["choices"][0].get("finish_reason") for c in chunks)


def test_13_completion(engine: httpx.Client) -> None:
    body = {"model": MODEL, "prompt": "Continue: 1, 2, 3,", "max_tokens": 4}
    response = engine.post("/v1/completions", json=body)
    assert response.status_code == 200, response.text
    assert response.headers["x-model-routed-to"] == f"mlx/{MODEL}"
    assert_legacy_timing(response)
    answer = response.json()
    assert (answer["object"], answer["model"]) == ("text_completion", MODEL)
    assert {"text", "index", "finish_reason"} <= answer["choices"][0].keys()
    assert answer["usage"]["completion_tokens"] > 0


def test_14_an_unknown_model_falls_back_and_says_so(engine: httpx.Client) -> None:
    body = {**chat_body("hi"), "model": "gpt-9000-imaginary"}
    response = engine.post("/v1/chat/completions", json=body)
    assert response.status_code == 200, response.text
    assert response.headers["x-model-resolution"].startswith("fallback (requested 'gpt-9000-imaginary'")
    assert response.headers["x-model-routed-to"] == f"mlx/{MODEL}"
    assert_legacy_timing(response)
    assert response.json()["model"] == MODEL


def test_15_role_fast_resolves_through_the_roles_file(engine: httpx.Client) -> None:
    # The capture recorded a 503: the role's model failed to load on that machine. Here it loads.
    response = engine.post("/v1/chat/completions", json={**chat_body("hi"), "model": "role:fast"})
    assert response.status_code == 200, response.text
    assert response.json()["model"] == MODEL


def test_16_swarm_fanout(engine: httpx.Client) -> None:
    body = {"models": [MODEL], "messages": [{"role": USER, "content": "Reply only: A"}], "max_tokens": 4}
    response = engine.post("/swarm/fanout", json=body)
    assert response.status_code == 200, response.text
    assert response.headers["x-swarm-models"] == MODEL
    data = response.json()
    assert data["object"] == "swarm.fanout"
    assert {"id", "created"} <= data.keys()
    (row,) = data["responses"]
    assert row.keys() >= ROW_FIELDS
    assert (row["model"], row["ok"], row["error"]) == (MODEL, True, None)
    assert row["text"] == row["response"]["choices"][0]["message"]["content"]
    assert row["response"]["object"] == "chat.completion"


def test_17_swarm_vote_first_success(engine: httpx.Client) -> None:
    body = {
        "models": [MODEL],
        "strategy": "first-success",
        "messages": [{"role": USER, "content": "Reply only: B"}],
        "max_tokens": 4,
    }
    response = engine.post("/swarm/vote", json=body)
    assert response.status_code == 200, response.text
    assert (response.headers["x-swarm-strategy"], response.headers["x-swarm-winner"]) == ("first-success", MODEL)
    data = response.json()
    assert (data["object"], data["model"]) == ("chat.completion", f"swarm/{MODEL}")
    swarm = data["swarm"]
    assert (swarm["strategy"], swarm["winner"]) == ("first-success", MODEL)
    assert swarm["rationale"]
    (row,) = swarm["candidates"]
    assert row.keys() >= ROW_FIELDS
    assert data["choices"][0]["message"]["content"] == row["text"]


def test_18_swarm_pipeline_single_unnamed_step(engine: httpx.Client) -> None:
    body = {"steps": [{"model": MODEL}], "messages": [{"role": USER, "content": "Reply only: C"}], "max_tokens": 4}
    response = engine.post("/swarm/pipeline", json=body)
    assert response.status_code == 200, response.text
    assert (response.headers["x-swarm-strategy"], response.headers["x-swarm-steps"]) == ("pipeline", "step_0")
    data = response.json()
    assert (data["object"], data["model"]) == ("chat.completion", f"swarm/pipeline/{MODEL}")
    (step,) = data["swarm"]["history"]
    assert {"name", "model", "text", "latency_ms"} <= step.keys()
    assert (step["name"], step["model"]) == ("step_0", MODEL)
    assert data["choices"][0]["message"]["content"] == step["text"]


def test_19_swarm_debate_one_round(engine: httpx.Client) -> None:
    body = {
        "models": [MODEL, MODEL],
        "judge": MODEL,
        "rounds": 1,
        "messages": [{"role": USER, "content": "Reply only: D"}],
        "max_tokens": 4,
    }
    response = engine.post("/swarm/debate", json=body)
    assert response.status_code == 200, response.text
    assert (response.headers["x-swarm-strategy"], response.headers["x-swarm-rounds"]) == ("debate", "1")
    data = response.json()
    assert data["model"] == f"swarm/debate/{MODEL}"
    swarm = data["swarm"]
    assert (swarm["strategy"], swarm["rounds"], swarm["judge"]) == ("debate", 1, MODEL)
    assert swarm["rationale"]
    assert [(t["round"], t["model"]) for t in swarm["transcript"]] == [(1, MODEL), (1, MODEL)]
    assert all({"round", "model", "text", "latency_ms"} <= t.keys() for t in swarm["transcript"])


def test_20_warm_dashboard_snapshot(engine: httpx.Client) -> None:
    snap = engine.get("/dashboard/api/snapshot").json()
    assert (snap["models_loaded"], snap["memory"]) == ([MODEL], {"loaded": [MODEL], "count": 1, "max": 1})
    assert isinstance(snap["active_by_alias"], dict)
    events = snap["events"]
    assert events
    assert all(e.keys() >= EVENT_FIELDS for e in events)
    kinds = {e["route_kind"] for e in events}
    assert {"chat", "swarm"} <= kinds
    chat = next(e for e in events if e["route_kind"] == "chat" and e["requested_model"] == "role:fast")
    assert (chat["resolved_model"], chat["backend"], chat["status"], chat["error"]) == (MODEL, "mlx", "ok", None)
    assert chat["total_tokens"] == chat["prompt_tokens"] + chat["completion_tokens"] > 0
    assert chat["preview"] == {}  # prompts are not captured: nothing of them is kept (the original kept 200 chars)
    assert [e["ts"] for e in events] == sorted(e["ts"] for e in events)  # oldest first, as the original listed


def test_21_dashboard_preferences(engine: httpx.Client) -> None:
    body = {"default_model": MODEL, "swarm_presets": {"baseline": [MODEL]}}
    response = engine.post("/dashboard/api/preferences", json=body)
    assert response.status_code == 200, response.text
    assert response.json()["ok"] is True
    assert response.json()["preferences"] == body
    assert engine.get("/dashboard/api/snapshot").json()["preferences"]["default_model"] == MODEL


def test_22_unload_of_a_model_not_resident_is_404(engine: httpx.Client) -> None:
    # The capture's model had been evicted already; here it is resident until the first unload.
    assert engine.delete(f"/v1/models/{MODEL}").status_code in (200, 202)
    response = engine.delete(f"/v1/models/{MODEL}")
    assert response.status_code == 404
    error = response.json()["error"]
    assert "not loaded" in error["message"]
    assert (error["ok"], error["resident"]) == (False, [])  # the original's fields, inside the envelope


def test_23_latency_tier_header(engine: httpx.Client) -> None:
    headers = {"X-MLX-Latency-Tier": "fast"}
    response = engine.post("/v1/chat/completions", json={**chat_body("hi"), "model": "auto"}, headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["x-model-routed-to"] == f"mlx/{MODEL}"
    assert_legacy_timing(response)


def test_24_chat_without_a_key_is_401(engine: httpx.Client) -> None:
    response = httpx.post(engine.base_url.join("/v1/chat/completions"), json=chat_body("hi"))
    assert response.status_code == 401
    assert response.json()["error"]["type"] == "authentication_error"


def test_25_a_key_in_the_query_string_is_refused(engine: httpx.Client) -> None:
    url = engine.base_url.join(f"/v1/chat/completions?api_key={KEY}")
    response = httpx.post(url, json=chat_body("hi"))
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "api_key_in_query"


def test_26_a_prompt_beyond_the_context_is_refused_with_both_counts(engine: httpx.Client) -> None:
    # The capture shows a 60 000-character prompt accepted and answered with garbage ("p p p p").
    # MLX_CONTEXT_OVER_BUDGET=error (its documented default) refuses it here, naming both sizes.
    response = engine.post("/v1/chat/completions", json=chat_body("p " * 30_000))
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["code"] == "context_length_exceeded"
    assert "2048" in error["message"]


def test_27_final_snapshot_keeps_at_most_max_events(engine: httpx.Client) -> None:
    snap = engine.get("/dashboard/api/snapshot").json()
    assert len(snap["events"]) == 8  # MLX_DASHBOARD_MAX_EVENTS=8, and more requests than that ran
    assert snap["config"]["admission"]["inflight_total"] == 0
