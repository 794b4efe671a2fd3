"""Streamed Anthropic Messages events ↔ OpenAI chat completion chunks, both directions.

Two small state machines, fed one event (or chunk) at a time as plain JSON objects; each returns
what the other protocol says at that point. ``EventsToChunks`` serves the anthropic backend;
``ChunksToEvents`` serves the inbound ``/v1/messages`` route. No I/O, no SSE framing.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from local_lattice.protocol.anthropic import FINISH_TO_STOP, STOP_TO_FINISH, anthropic_usage, new_message_id
from local_lattice.types import JSONObject, Usage


@dataclass
class EventsToChunks:
    """Anthropic stream events → OpenAI ``chat.completion.chunk`` objects.

    Usage rides on the final chunk (the one with ``finish_reason``), so clients that did not ask
    for a usage-only chunk see nothing unusual.
    """

    model: str
    id: str = ""
    created: int = field(default_factory=lambda: int(time.time()))
    prompt_tokens: int = 0
    completion_tokens: int = 0
    _tool_index: dict[int, int] = field(default_factory=dict)
    _stop: str | None = None

    def _chunk(self, delta: JSONObject, finish: str | None = None) -> JSONObject:
        return {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        }

    @property
    def usage(self) -> Usage:
        return Usage(self.prompt_tokens, self.completion_tokens)

    def feed(self, event: JSONObject) -> list[JSONObject]:
        kind = event.get("type")
        if kind == "message_start":
            message = event.get("message") or {}
            self.id = str(message.get("id") or new_message_id())
            self.model = str(message.get("model") or self.model)
            self.prompt_tokens, self.completion_tokens = anthropic_usage(message.get("usage"))
            return [self._chunk({"role": "assistant", "content": ""})]
        if kind == "content_block_start":
            block = event.get("content_block") or {}
            if block.get("type") != "tool_use":
                return []
            index = self._tool_index.setdefault(int(event.get("index", 0)), len(self._tool_index))
            call = {"index": index, "id": block.get("id"), "type": "function"}
            call["function"] = {"name": block.get("name"), "arguments": ""}
            return [self._chunk({"tool_calls": [call]})]
        if kind == "content_block_delta":
            return self._delta(event)
        if kind == "message_delta":
            self._stop = (event.get("delta") or {}).get("stop_reason") or self._stop
            usage = event.get("usage") or {}
            if usage.get("output_tokens") is not None:
                self.completion_tokens = int(usage["output_tokens"])
            if usage.get("input_tokens"):
                self.prompt_tokens = anthropic_usage(usage)[0]
            return []
        if kind == "message_stop":
            final = self._chunk({}, STOP_TO_FINISH.get(str(self._stop), "stop"))
            final["usage"] = self.usage.as_dict()
            return [final]
        return []  # ping, content_block_stop, unknown future events

    def _delta(self, event: JSONObject) -> list[JSONObject]:
        delta = event.get("delta") or {}
        if delta.get("type") == "text_delta":
            return [self._chunk({"content": delta.get("text", "")})]
        if delta.get("type") == "input_json_delta":
            index = self._tool_index.get(int(event.get("index", 0)))
            if index is None:
                return []
            call = {"index": index, "function": {"arguments": delta.get("partial_json", "")}}
            return [self._chunk({"tool_calls": [call]})]
        return []  # thinking and signature deltas have no OpenAI counterpart


Event = tuple[str, JSONObject]


@dataclass
class ChunksToEvents:
    """OpenAI chunks → Anthropic events: ``message_start``, then per block ``content_block_start`` /
    ``content_block_delta``… / ``content_block_stop``, then ``message_delta`` and ``message_stop``."""

    model: str
    id: str = field(default_factory=new_message_id)
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float | None = None
    _reported: bool = False
    _deltas: int = 0
    _started: bool = False
    _block: int = -1
    _block_kind: str | None = None
    _tool_blocks: dict[int, int] = field(default_factory=dict)
    _finish: str | None = None

    def _start(self) -> list[Event]:
        if self._started:
            return []
        self._started = True
        message: JSONObject = {
            "id": self.id,
            "type": "message",
            "role": "assistant",
            "model": self.model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {"input_tokens": self.input_tokens, "output_tokens": 0},
        }
        return [("message_start", {"type": "message_start", "message": message})]

    def _close_block(self) -> list[Event]:
        if self._block_kind is None:
            return []
        self._block_kind = None
        return [("content_block_stop", {"type": "content_block_stop", "index": self._block})]

    def _open_block(self, kind: str, block: JSONObject) -> list[Event]:
        events = self._close_block()
        self._block += 1
        self._block_kind = kind
        events.append(
            ("content_block_start", {"type": "content_block_start", "index": self._block, "content_block": block})
        )
        return events

    def feed(self, chunk: JSONObject) -> list[Event]:
        events = self._start()
        usage = chunk.get("usage")
        if isinstance(usage, dict):
            self._reported = True
            self.input_tokens = int(usage.get("prompt_tokens") or self.input_tokens)
            self.output_tokens = int(usage.get("completion_tokens") or self.output_tokens)
            if "cost_usd" in usage:
                self.cost_usd = usage["cost_usd"]
        for choice in chunk.get("choices") or []:
            delta = choice.get("delta") or {}
            text = delta.get("content")
            if text:
                if self._block_kind != "text":
                    events += self._open_block("text", {"type": "text", "text": ""})
                events.append(self._block_delta({"type": "text_delta", "text": text}))
                self._deltas += 1
            for call in delta.get("tool_calls") or []:
                events += self._tool_delta(call)
            if choice.get("finish_reason"):
                self._finish = choice["finish_reason"]
        return events

    def _block_delta(self, delta: JSONObject) -> Event:
        return ("content_block_delta", {"type": "content_block_delta", "index": self._block, "delta": delta})

    def _tool_delta(self, call: JSONObject) -> list[Event]:
        events: list[Event] = []
        position = int(call.get("index", 0))
        function = call.get("function") or {}
        if position not in self._tool_blocks:
            block: JSONObject = {
                "type": "tool_use",
                "id": call.get("id") or "toolu_" + new_message_id()[4:],
                "name": function.get("name") or "",
                "input": {},
            }
            events += self._open_block("tool_use", block)
            self._tool_blocks[position] = self._block
        arguments = function.get("arguments")
        if arguments:
            if self._tool_blocks[position] != self._block:
                return events  # interleaved tool deltas cannot be re-opened in Anthropic's stream
            events.append(self._block_delta({"type": "input_json_delta", "partial_json": arguments}))
            self._deltas += 1
        return events

    def finish(self) -> list[Event]:
        events = self._start()
        events += self._close_block()
        # Servers that never report usage (llama-cpp-python's) stream about one token per chunk:
        # the count of deltas is then the best figure there is, rather than a 0 that reads as "nothing".
        output = self.output_tokens if self._reported else self._deltas
        usage: JSONObject = {"input_tokens": self.input_tokens, "output_tokens": output}
        if self.cost_usd is not None:
            usage["cost_usd"] = self.cost_usd
        stop = FINISH_TO_STOP.get(str(self._finish), "end_turn")
        delta = {"type": "message_delta", "delta": {"stop_reason": stop, "stop_sequence": None}, "usage": usage}
        events.append(("message_delta", delta))
        events.append(("message_stop", {"type": "message_stop"}))
        return events
