"""The OpenAI Agents SDK through the live gateway: a ``Runner.run`` on the chat-completions model and
on the SDK's default, the Responses API (with a function tool the agent really calls). Tracing is
off: it would upload to OpenAI."""

from __future__ import annotations

from collections.abc import AsyncIterator

import openai
import pytest
from agents import (
    Agent,
    ModelSettings,
    OpenAIChatCompletionsModel,
    OpenAIProvider,
    RunConfig,
    Runner,
    function_tool,
)

from tests.compat.conftest import KEY
from tests.support.models import SMOLLM2_ID

pytestmark = pytest.mark.slow

INSTRUCTIONS = "Answer in one sentence."
SETTINGS = ModelSettings(temperature=0, max_tokens=32)
calls: list[str] = []


@function_tool
def get_weather(city: str) -> str:
    """Get the current weather in a city."""
    calls.append(city)
    return f"It is sunny and 21 degrees in {city}."


@pytest.fixture
async def client(base_url: str) -> AsyncIterator[openai.AsyncOpenAI]:
    async with openai.AsyncOpenAI(base_url=base_url, api_key=KEY, max_retries=0) as sdk:
        yield sdk


async def test_chat_completions_model(client: openai.AsyncOpenAI) -> None:
    model = OpenAIChatCompletionsModel(model=SMOLLM2_ID, openai_client=client)
    agent = Agent(name="geo", instructions=INSTRUCTIONS, model=model, model_settings=SETTINGS)
    result = await Runner.run(agent, "What is the capital of France?", run_config=RunConfig(tracing_disabled=True))
    assert "paris" in str(result.final_output).lower()


async def test_default_responses_model(client: openai.AsyncOpenAI) -> None:
    agent = Agent(name="geo", instructions=INSTRUCTIONS, model=SMOLLM2_ID, model_settings=SETTINGS)
    config = RunConfig(model_provider=OpenAIProvider(openai_client=client), tracing_disabled=True)
    result = await Runner.run(agent, "What is the capital of France?", run_config=config)
    assert "paris" in str(result.final_output).lower()
    assert result.raw_responses[0].usage.output_tokens > 0


async def test_responses_model_calls_a_function_tool(client: openai.AsyncOpenAI) -> None:
    calls.clear()
    settings = ModelSettings(temperature=0, max_tokens=64, tool_choice="get_weather")
    agent = Agent(name="weather", instructions=INSTRUCTIONS, model=SMOLLM2_ID, model_settings=settings,
                  tools=[get_weather])  # fmt: skip
    config = RunConfig(model_provider=OpenAIProvider(openai_client=client), tracing_disabled=True)
    result = await Runner.run(agent, "What is the weather in Paris?", run_config=config, max_turns=4)
    assert len(calls) == 1
    assert isinstance(calls[0], str)
    kinds = [item.type for item in result.new_items]
    assert kinds[:2] == ["tool_call_item", "tool_call_output_item"]
    assert str(result.final_output).strip()
