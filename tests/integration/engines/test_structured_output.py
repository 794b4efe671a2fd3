"""Tools and JSON mode on the in-process engines, through the real gateway process, with the real
SmolLM2-135M-Instruct and Gemma 3 270M, talked to with the official openai and anthropic clients.

Every answer is checked the way a client would: arguments and JSON parsed and validated against
the schema the request gave (``jsonschema``). An MLX model (a tiny real one) cannot hold decoding
to a schema: it must refuse, never answer as if the field had not been sent.
"""

from __future__ import annotations

import json
import re
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import httpx
import jsonschema
import openai
import pytest

from tests.support.models import GEMMA_ID, SMOLLM2_ID, smollm2_path
from tests.support.procs import PYTHON, RunningProcess, free_port, run_process
from tests.support.servers import gateway_process

pytestmark = pytest.mark.slow

MODELS = [SMOLLM2_ID, GEMMA_ID]
WEATHER_PARAMETERS = {
    "type": "object",
    "properties": {
        "city": {"type": "string", "maxLength": 24},
        "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
    },
    "required": ["city", "unit"],
}
TIME_PARAMETERS = {
    "type": "object",
    "properties": {"timezone": {"type": "string", "maxLength": 24}},
    "required": ["timezone"],
}
TOOLS: list[Any] = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Current weather in a city",
            "parameters": WEATHER_PARAMETERS,
        },
    },
    {
        "type": "function",
        "function": {"name": "get_time", "description": "Current time in a timezone", "parameters": TIME_PARAMETERS},
    },
]
PARAMETERS = {"get_weather": WEATHER_PARAMETERS, "get_time": TIME_PARAMETERS}
ANSWER_SCHEMA = {
    "type": "object",
    "properties": {
        "city": {"type": "string", "maxLength": 24},
        "population_millions": {"type": "integer", "minimum": 0},
        "is_capital": {"type": "boolean"},
    },
    "required": ["city", "population_millions", "is_capital"],
}
QUESTION = [{"role": "user", "content": "What is the weather in Paris right now?"}]
FACTS = [{"role": "user", "content": "Give facts about Paris as JSON."}]
JSON_MODE = {"type": "json_object"}
PERSON = [{"role": "user", "content": "Reply in JSON: name and age of a person."}]


@pytest.fixture(scope="module")
def gateway(
    tmp_path_factory: pytest.TempPathFactory, gemma_gguf: Path, tiny_mlx_root: Path
) -> Iterator[RunningProcess]:
    home = tmp_path_factory.mktemp("home")
    config = f"""
[[backends]]
name = "local"
type = "llamacpp"
discover = false
n_ctx = 2048
model_files = {{ "{SMOLLM2_ID}" = "{smollm2_path()}", "{GEMMA_ID}" = "{gemma_gguf}" }}

[[backends]]
name = "mlx"
type = "mlx"
discover = false
model_paths = ["{tiny_mlx_root}"]
"""
    with gateway_process(config, env={"HOME": str(home)}) as process:
        yield process


@pytest.fixture
def client(gateway: RunningProcess) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=gateway.url + "/v1", api_key="unused", max_retries=0, timeout=300) as c:
        yield c


def assert_valid_call(name: str, arguments: str) -> dict[str, Any]:
    parsed = json.loads(arguments)
    jsonschema.validate(parsed, PARAMETERS[name])
    assert isinstance(parsed, dict)
    return parsed


@pytest.mark.parametrize("model", MODELS)
def test_a_named_tool_choice_returns_that_call_with_valid_arguments(client: openai.OpenAI, model: str) -> None:
    answer = client.chat.completions.create(
        model=model,
        messages=QUESTION,
        tools=TOOLS,
        tool_choice={"type": "function", "function": {"name": "get_weather"}},
        max_tokens=200,
    )
    choice = answer.choices[0]
    assert choice.finish_reason == "tool_calls"
    calls = choice.message.tool_calls or []
    assert len(calls) == 1
    call = calls[0]
    assert call.type == "function"
    assert call.id.startswith("call_")
    assert call.function.name == "get_weather"
    assert_valid_call("get_weather", call.function.arguments)


@pytest.mark.parametrize("model", MODELS)
def test_required_returns_a_call_to_one_of_the_tools(client: openai.OpenAI, model: str) -> None:
    for seed in (1, 2, 3):
        answer = client.chat.completions.create(
            model=model, messages=QUESTION, tools=TOOLS, tool_choice="required", max_tokens=200, seed=seed
        )
        assert answer.choices[0].finish_reason == "tool_calls"
        call = (answer.choices[0].message.tool_calls or [])[0]
        assert call.function.name in PARAMETERS
        assert_valid_call(call.function.name, call.function.arguments)


@pytest.mark.parametrize("model", MODELS)
def test_json_schema_and_json_object_answers_parse_and_validate(client: openai.OpenAI, model: str) -> None:
    answer = client.chat.completions.create(
        model=model,
        messages=FACTS,
        response_format={"type": "json_schema", "json_schema": {"name": "facts", "schema": ANSWER_SCHEMA}},
        max_tokens=200,
    )
    assert answer.choices[0].finish_reason == "stop"
    jsonschema.validate(json.loads(answer.choices[0].message.content or ""), ANSWER_SCHEMA)
    loose = client.chat.completions.create(
        model=model, messages=PERSON, response_format={"type": "json_object"}, max_tokens=200, temperature=0
    )
    assert loose.choices[0].finish_reason == "stop"
    assert isinstance(json.loads(loose.choices[0].message.content or ""), dict)


@pytest.mark.parametrize("model", MODELS)
def test_auto_gives_either_a_valid_call_or_text(client: openai.OpenAI, model: str) -> None:
    kinds = set()
    for seed, messages in enumerate([QUESTION, [{"role": "user", "content": "Say hello to Ana."}]] * 2):
        answer = client.chat.completions.create(model=model, messages=messages, tools=TOOLS, max_tokens=60, seed=seed)
        choice = answer.choices[0]
        if choice.message.tool_calls:
            assert choice.finish_reason == "tool_calls"
            call = choice.message.tool_calls[0]
            assert_valid_call(call.function.name, call.function.arguments)
            kinds.add("call")
        else:
            assert choice.finish_reason in ("stop", "length")
            assert choice.message.content
            kinds.add("text")
    assert kinds  # which of the two a tiny model picks is its own business; both shapes are valid


def test_none_answers_in_plain_text(client: openai.OpenAI) -> None:
    answer = client.chat.completions.create(
        model=SMOLLM2_ID, messages=QUESTION, tools=TOOLS, tool_choice="none", max_tokens=24, temperature=0
    )
    assert answer.choices[0].message.tool_calls is None
    assert answer.choices[0].message.content
    assert answer.choices[0].finish_reason in ("stop", "length")


@pytest.mark.parametrize("model", MODELS)
def test_a_streamed_call_comes_as_tool_call_deltas(client: openai.OpenAI, model: str) -> None:
    names, ids, arguments, finishes = [], [], [], []
    with client.chat.completions.create(
        model=model,
        messages=QUESTION,
        tools=TOOLS,
        tool_choice={"type": "function", "function": {"name": "get_time"}},
        max_tokens=200,
        stream=True,
    ) as stream:
        for chunk in stream:
            for choice in chunk.choices:
                for call in choice.delta.tool_calls or []:
                    assert call.index == 0
                    if call.id:
                        ids.append(call.id)
                    if call.function and call.function.name:
                        names.append(call.function.name)
                    if call.function and call.function.arguments:
                        arguments.append(call.function.arguments)
                if choice.finish_reason:
                    finishes.append(choice.finish_reason)
    assert names == ["get_time"]
    assert len(ids) == 1
    assert len(arguments) > 1  # streamed as it was generated, not in one piece at the end
    assert_valid_call("get_time", "".join(arguments))
    assert finishes == ["tool_calls"]


def test_streamed_json_mode_validates(client: openai.OpenAI) -> None:
    with client.chat.completions.create(
        model=SMOLLM2_ID,
        messages=FACTS,
        response_format={"type": "json_schema", "json_schema": {"name": "facts", "schema": ANSWER_SCHEMA}},
        max_tokens=200,
        stream=True,
    ) as stream:
        text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    jsonschema.validate(json.loads(text), ANSWER_SCHEMA)


def test_a_conversation_with_an_earlier_call_and_its_result_goes_on(client: openai.OpenAI) -> None:
    call = {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}
    answer = client.chat.completions.create(
        model=SMOLLM2_ID,
        messages=[
            *QUESTION,
            {"role": "assistant", "content": None, "tool_calls": [call]},  # type: ignore[list-item]
            {"role": "tool", "tool_call_id": "call_1", "content": "18 degrees and sunny"},
        ],
        tools=TOOLS,
        tool_choice="none",
        max_tokens=30,
        temperature=0,
    )
    assert answer.choices[0].message.content


def test_the_messages_api_returns_tool_use_blocks(gateway: RunningProcess) -> None:
    tools: list[Any] = [
        {"name": t["function"]["name"], "description": t["function"]["description"], "input_schema": p}
        for t, p in zip(TOOLS, PARAMETERS.values(), strict=True)
    ]
    with anthropic.Anthropic(base_url=gateway.url, api_key="unused", max_retries=0, timeout=300) as claude:
        named = claude.messages.create(
            model=SMOLLM2_ID,
            max_tokens=200,
            messages=QUESTION,  # type: ignore[arg-type]
            tools=tools,
            tool_choice={"type": "tool", "name": "get_weather"},
        )
        assert named.stop_reason == "tool_use"
        block = next(b for b in named.content if b.type == "tool_use")
        assert block.name == "get_weather"
        jsonschema.validate(block.input, WEATHER_PARAMETERS)
        any_tool = claude.messages.create(
            model=GEMMA_ID,
            max_tokens=200,
            messages=QUESTION,  # type: ignore[arg-type]
            tools=tools,
            tool_choice={"type": "any"},
        )
        used = next(b for b in any_tool.content if b.type == "tool_use")
        jsonschema.validate(used.input, PARAMETERS[used.name])
        with claude.messages.stream(
            model=SMOLLM2_ID,
            max_tokens=200,
            messages=QUESTION,  # type: ignore[arg-type]
            tools=tools,
            tool_choice={"type": "tool", "name": "get_time"},
        ) as stream:
            final = stream.get_final_message()
        streamed = next(b for b in final.content if b.type == "tool_use")
        assert (streamed.name, final.stop_reason) == ("get_time", "tool_use")
        jsonschema.validate(streamed.input, TIME_PARAMETERS)
        shaped = claude.messages.create(
            model=SMOLLM2_ID,
            max_tokens=200,
            messages=FACTS,  # type: ignore[arg-type]
            output_config={"format": {"type": "json_schema", "schema": ANSWER_SCHEMA}},
        )
        text = "".join(b.text for b in shaped.content if b.type == "text")
        jsonschema.validate(json.loads(text), ANSWER_SCHEMA)


def test_the_responses_api_returns_function_calls_and_json(client: openai.OpenAI) -> None:
    tools: list[Any] = [{"type": "function", "strict": False, **t["function"]} for t in TOOLS]
    response = client.responses.create(
        model=SMOLLM2_ID, input="What is the weather in Paris?", tools=tools, tool_choice="required"
    )
    calls = [item for item in response.output if item.type == "function_call"]
    assert len(calls) == 1
    assert_valid_call(calls[0].name, calls[0].arguments)
    stream = client.responses.create(
        model=SMOLLM2_ID,
        input="What time is it in Tokyo?",
        tools=tools,
        tool_choice={"type": "function", "name": "get_time"},
        stream=True,
    )
    done = [e for e in stream if e.type == "response.function_call_arguments.done"]
    assert len(done) == 1
    assert_valid_call("get_time", done[0].arguments)
    shaped = client.responses.create(
        model=SMOLLM2_ID,
        input="Give facts about Paris as JSON.",
        text={"format": {"type": "json_schema", "name": "facts", "schema": ANSWER_SCHEMA}},
    )
    jsonschema.validate(json.loads(shaped.output_text), ANSWER_SCHEMA)


def test_mlx_models_are_not_picked_for_tools_or_json(gateway: RunningProcess) -> None:
    with httpx.Client(base_url=gateway.url, timeout=60) as http:
        listed = {m["id"] for m in http.get("/v1/models").json()["data"]}
        assert {"tiny-a", "tiny-b", SMOLLM2_ID} <= listed
        tools = http.post("/v1/resolve", json={"model": "tiny-*", "messages": QUESTION, "tools": TOOLS})
        # No tiny-* model can honour tools: the default policy falls back to one that can, and says so.
        assert tools.status_code == 200, tools.text
        assert tools.json()["backend"] == "local", tools.text
        assert "fallback (requested 'tiny-*'" in tools.json()["explanation"]
        for needs in ({"tools": TOOLS}, {"response_format": JSON_MODE}):
            picked = http.post("/v1/resolve", json={"model": "auto", "messages": QUESTION, **needs})
            assert picked.status_code == 200, picked.text
            assert picked.json()["backend"] == "local"
            assert {c["backend"] for c in picked.json()["candidates"]} == {"local"}  # no MLX model among them


def test_an_mlx_backend_refuses_tools_and_json_mode_with_a_400(tmp_path: Path, tiny_mlx_root: Path) -> None:
    # tiny-b is (wrongly) configured as tool-capable, so routing sends tools to it: the engine itself says no.
    config = f"""
[[backends]]
name = "mlx"
type = "mlx"
discover = false
model_paths = ["{tiny_mlx_root}"]

[profiles."tiny-b"]
supports_tools = true
"""
    with (
        gateway_process(config, env={"HOME": str(tmp_path)}) as mlx_only,
        openai.OpenAI(base_url=mlx_only.url + "/v1", api_key="unused", max_retries=0, timeout=120) as client,
    ):
        for model, extra, param in [
            ("tiny-a", {"response_format": JSON_MODE}, "response_format"),
            ("tiny-b", {"tools": TOOLS}, "tools"),
            ("tiny-b", {"tools": TOOLS, "tool_choice": "required"}, "tool_choice"),
        ]:
            with pytest.raises(openai.BadRequestError) as refused:
                client.chat.completions.create(model=model, messages=FACTS, max_tokens=4, **extra)
            error = refused.value.body
            assert isinstance(error, dict)
            assert error["param"] == param
            assert "cannot constrain decoding" in error["message"]
        with pytest.raises(openai.BadRequestError):
            client.chat.completions.create(model="tiny-b", messages=FACTS, max_tokens=4, tools=TOOLS, stream=True)
        plain = client.chat.completions.create(
            model="tiny-b", messages=FACTS, max_tokens=4, tools=TOOLS, tool_choice="none"
        )
        assert plain.choices[0].finish_reason in ("stop", "length")
        health = httpx.get(mlx_only.url + "/healthz", timeout=30).json()
        assert health["backends"]["mlx"]["in_flight"] == {}


def test_bad_tool_requests_get_clear_400s_and_nothing_is_left_held(
    client: openai.OpenAI, gateway: RunningProcess
) -> None:
    cases: list[tuple[dict[str, Any], str]] = [
        ({"tools": TOOLS, "tool_choice": {"type": "function", "function": {"name": "nope"}}}, "tool_choice"),
        ({"tools": [{"type": "code_interpreter"}]}, "tools"),
        ({"response_format": {"type": "json_schema", "json_schema": {"name": "x"}}}, "response_format"),
        (
            {
                "response_format": {
                    "type": "json_schema",
                    "json_schema": {"name": "x", "schema": {"$ref": "http://x/y"}},
                }
            },
            "response_format",
        ),
    ]
    for extra, param in cases:
        with pytest.raises(openai.BadRequestError) as refused:
            client.chat.completions.create(model=SMOLLM2_ID, messages=QUESTION, max_tokens=8, **extra)
        assert isinstance(refused.value.body, dict)
        assert refused.value.body["param"] == param, extra
    health = httpx.get(gateway.url + "/healthz", timeout=30).json()
    assert health["backends"]["local"]["in_flight"] == {}


def test_schema_grammars_keep_raw_control_characters_out_of_strings() -> None:
    from local_lattice.backends.llamacpp import schema_grammar

    grammar = schema_grammar(json.dumps({"type": "object", "properties": {"s": {"type": "string"}}}))
    char = next(line for line in grammar.splitlines() if line.startswith("char ::="))
    assert char.startswith(r'char ::= [^"\\\x7F\x00-\x1F] |')


def guide_blocks(path: Path, section: str) -> list[str]:
    """The Python blocks of one ``## section`` of a guide."""
    text = path.read_text()
    body = text.split(f"## {section}\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"^```python\n(.*?)^```", body, flags=re.S | re.M)


def test_the_guides_tool_and_json_examples_run_on_the_default_embedded_model(tmp_path: Path) -> None:
    root = Path(__file__).resolve().parents[3]
    examples = [
        *guide_blocks(root / "docs/integrations/openai-sdk.md", "Tools and JSON mode"),
        *guide_blocks(root / "docs/integrations/anthropic-sdk.md", "Tools and structured outputs"),
    ]
    assert len(examples) == 2
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {"HOME": str(tmp_path), "LATTICE_CONFIG": "", "LATTICE_DISCOVER_SERVERS": "", "MIDDLE_LAYER_API_KEY": ""}
    argv = [PYTHON, "-m", "local_lattice", "serve", "--port", str(port)]
    outputs = []
    with run_process(argv, ready_url=base + "/healthz", base_url=base, env=env, timeout=120):
        for source in examples:
            done = subprocess.run(
                [PYTHON, "-c", source.replace("http://127.0.0.1:5001", base)],
                capture_output=True,
                text=True,
                timeout=300,
            )
            assert done.returncode == 0, done.stdout + done.stderr
            outputs.append(done.stdout)
    assert outputs[0].startswith("tool_calls get_weather {'city': ")
    assert "'capital': " in outputs[0]
    assert outputs[1].startswith("get_weather {'city': ")


def test_a_client_that_leaves_mid_call_stops_the_grammar_held_generation(gateway: RunningProcess) -> None:
    essay = {
        "type": "function",
        "function": {
            "name": "write",
            "parameters": {"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"]},
        },
    }
    body = {
        "model": SMOLLM2_ID,
        "messages": [{"role": "user", "content": "Write a very long story."}],
        "tools": [essay],
        "tool_choice": "required",
        "max_tokens": 2000,
        "stream": True,
    }
    with httpx.Client(base_url=gateway.url, timeout=120) as http:
        with http.stream("POST", "/v1/chat/completions", json=body) as response:
            lines = response.iter_lines()
            seen = [next(line for line in lines if '"arguments"' in line) for _ in range(4)]
            assert all("tool_calls" in line for line in seen)
            assert http.get("/healthz").json()["backends"]["local"]["in_flight"] == {SMOLLM2_ID: 1}
        closed_at = time.monotonic()
        while http.get("/healthz").json()["backends"]["local"]["in_flight"]:
            assert time.monotonic() - closed_at < 5.0, "generation went on after the client left"
            time.sleep(0.02)
        after = http.post("/v1/chat/completions", json={**body, "stream": False, "max_tokens": 4})
        assert after.status_code == 200
        assert after.json()["choices"][0]["finish_reason"] == "length"
