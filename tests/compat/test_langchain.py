"""LangChain's ``ChatOpenAI`` (invoke, stream, ``bind_tools``) and a small LangGraph graph — model,
tool, model — through the live gateway."""

from __future__ import annotations

import pytest
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage, ToolMessage
from langchain_core.tools import tool
from langchain_openai import ChatOpenAI
from langgraph.graph import END, START, MessagesState, StateGraph
from langgraph.prebuilt import ToolNode

from tests.compat.conftest import KEY
from tests.support.models import SMOLLM2_ID

pytestmark = pytest.mark.slow

QUESTION = "What is the capital of France? Answer in one sentence."


@tool
def get_weather(city: str) -> str:
    """Get the current weather in a city."""
    return f"It is sunny and 21 degrees in {city}."


def chat_model(base_url: str, max_tokens: int = 32) -> ChatOpenAI:
    return ChatOpenAI(model=SMOLLM2_ID, base_url=base_url, api_key=KEY, temperature=0, max_tokens=max_tokens)  # type: ignore[arg-type]


def test_invoke(base_url: str) -> None:
    answer = chat_model(base_url).invoke([HumanMessage(QUESTION)])
    assert isinstance(answer, AIMessage)
    assert "paris" in str(answer.content).lower()
    assert answer.response_metadata["model_name"] == SMOLLM2_ID
    assert answer.usage_metadata is not None
    assert answer.usage_metadata["output_tokens"] > 0


def test_stream(base_url: str) -> None:
    chunks = list(chat_model(base_url).stream(QUESTION))
    assert len(chunks) > 1
    assert "paris" in "".join(str(c.content) for c in chunks).lower()


async def test_async_invoke(base_url: str) -> None:
    answer = await chat_model(base_url).ainvoke(QUESTION)
    assert "paris" in str(answer.content).lower()


def test_bind_tools_forced(base_url: str) -> None:
    model = chat_model(base_url, max_tokens=64).bind_tools([get_weather], tool_choice="get_weather")
    answer = model.invoke("What is the weather in Paris?")
    assert isinstance(answer, AIMessage)
    assert answer.tool_calls[0]["name"] == "get_weather"
    assert isinstance(answer.tool_calls[0]["args"]["city"], str)


def test_langgraph_model_tool_model(base_url: str) -> None:
    caller = chat_model(base_url, max_tokens=64).bind_tools([get_weather], tool_choice="get_weather")
    writer = chat_model(base_url, max_tokens=48)

    def call_tool(state: MessagesState) -> dict[str, list[BaseMessage]]:
        return {"messages": [caller.invoke(state["messages"])]}

    def answer(state: MessagesState) -> dict[str, list[BaseMessage]]:
        report = state["messages"][-1].content
        prompt = [SystemMessage("Repeat the weather report in one sentence."), HumanMessage(str(report))]
        return {"messages": [writer.invoke(prompt)]}

    graph = StateGraph(MessagesState)
    graph.add_node("call_tool", call_tool)
    graph.add_node("tools", ToolNode([get_weather]))
    graph.add_node("answer", answer)
    graph.add_edge(START, "call_tool")
    graph.add_edge("call_tool", "tools")
    graph.add_edge("tools", "answer")
    graph.add_edge("answer", END)
    final = graph.compile().invoke({"messages": [HumanMessage("What is the weather in Paris?")]})
    kinds = [type(m).__name__ for m in final["messages"]]
    assert kinds == ["HumanMessage", "AIMessage", "ToolMessage", "AIMessage"]
    tool_result = final["messages"][2]
    assert isinstance(tool_result, ToolMessage)
    assert "sunny" in str(tool_result.content)
    assert str(final["messages"][-1].content).strip()
