"""How one local answer is decoded once its shape is known: free text, text held to a schema, a
forced call, or the model's own choice between text and a call.

Owns ``Delta`` (one step of generated text), ``Plan`` (a ``Shape`` with its schemas compiled to
the engine's constraint objects) and ``decode_planned``, which picks the decoding for a plan
over an engine's ``decode(constraint, call)`` function. Runs in the engine's worker thread; pure
otherwise (no I/O, no engine imports).

The model's own choice (``tool_choice: "auto"``) costs nothing while it answers in text: it is
decoded free, and only if the answer opens with ``{`` or ``<tool_call>`` is it started again
from the same prompt (the prompt's cache makes that cheap) held to the call envelope, so a call
it begins always parses. With a ``response_format`` too, both are JSON: it is decoded held to
"a call envelope or the answer's schema" and read as a call when it begins like one.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from typing import Any

from local_lattice.engines.calls import EnvelopeReader, opens_call
from local_lattice.engines.structured import Shape


@dataclass(frozen=True, slots=True)
class Delta:
    text: str
    prompt_tokens: int
    completion_tokens: int
    finish: str | None
    call: bool = False  # the text belongs to the call envelope


@dataclass(frozen=True, slots=True)
class Plan:
    """A shape and its compiled constraints (``None`` where that part is free)."""

    shape: Shape
    call: Any = None
    text: Any = None
    either: Any = None  # a call or the text schema, for "auto" with a response_format


Decode = Callable[[Any, bool], Iterator[Delta]]


def decode_planned(plan: Plan | None, decode: Decode) -> Iterator[Delta]:
    if plan is None:
        return decode(None, False)
    if plan.call is None:
        return decode(plan.text, False)
    if plan.shape.mode == "forced":
        return decode(plan.call, True)
    if plan.either is not None:
        return _held(decode(plan.either, False), _envelope_head, None)
    return _held(decode(None, False), opens_call, lambda: decode(plan.call, True))


def _envelope_head(text: str) -> bool | None:
    reader = EnvelopeReader()
    reader.feed(text)
    return True if reader.name is not None else reader.rejects()


def _held(
    first: Iterator[Delta], verdict: Callable[[str], bool | None], restart: Callable[[], Iterator[Delta]] | None
) -> Iterator[Delta]:
    """Hold the first deltas until ``verdict`` tells text from call; a call either goes on in
    ``first`` (flagged) or, with ``restart``, is decoded again held to the envelope."""
    held: list[Delta] = []
    for delta in first:
        held.append(delta)
        text = "".join(d.text for d in held)
        said = verdict(text)
        if said is None and delta.finish is None:
            continue
        merged = replace(delta, text=text)
        if said and restart is not None:
            close = getattr(first, "close", None)
            if close is not None:
                close()
            yield from restart()
            return
        yield replace(merged, call=bool(said))
        yield from (replace(d, call=bool(said)) for d in first)
        return
