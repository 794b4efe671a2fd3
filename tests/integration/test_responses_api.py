"""``/v1/responses`` through the official openai client against the real gateway and real SmolLM2."""

from __future__ import annotations

from collections.abc import Iterator

import openai
import pytest

from tests.support.models import SMOLLM2_ID
from tests.support.procs import RunningProcess
from tests.support.servers import gateway_process

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def client(smollm2_server: RunningProcess) -> Iterator[openai.OpenAI]:
    toml = f'[[backends]]\nname = "llama"\nurl = "{smollm2_server.url}"\n'
    with gateway_process(toml) as gw:
        yield openai.OpenAI(base_url=gw.url + "/v1", api_key="unused", max_retries=0)


def test_text_input_with_instructions(client: openai.OpenAI) -> None:
    response = client.responses.create(
        model=SMOLLM2_ID,
        instructions="Answer in one short sentence.",
        input="What is the capital of France?",
        max_output_tokens=24,
        temperature=0,
    )
    assert response.status == "completed"
    assert "paris" in response.output_text.lower()
    assert response.usage is not None
    assert response.usage.output_tokens > 0


def test_message_input(client: openai.OpenAI) -> None:
    response = client.responses.create(
        model=SMOLLM2_ID,
        input=[
            {"role": "developer", "content": "Answer in one short sentence."},
            {"role": "user", "content": [{"type": "input_text", "text": "What is the capital of France?"}]},
        ],
        max_output_tokens=24,
        temperature=0,
    )
    assert "paris" in response.output_text.lower()


def test_streaming_events(client: openai.OpenAI) -> None:
    stream = client.responses.create(
        model=SMOLLM2_ID,
        instructions="Answer in one short sentence.",
        input="What is the capital of France?",
        max_output_tokens=24,
        temperature=0,
        stream=True,
    )
    events = list(stream)
    kinds = [e.type for e in events]
    assert kinds[0] == "response.created"
    assert kinds[-1] == "response.completed"
    deltas = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert "paris" in deltas.lower()
    done = [e for e in events if e.type == "response.output_text.done"]
    assert done[0].text == deltas
    assert [e.sequence_number for e in events] == list(range(len(events)))
    completed = events[-1].response
    assert completed.output_text == deltas
    assert completed.usage is not None


def test_unsupported_state_is_a_clear_400(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError, match="previous_response_id"):
        client.responses.create(model=SMOLLM2_ID, input="hi", previous_response_id="resp_123")
