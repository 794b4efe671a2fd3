from __future__ import annotations

import pytest

from local_lattice.engines.failures import describe_load_failure, is_oom
from local_lattice.engines.sampling import StopMatcher, sampling_of
from local_lattice.errors import InvalidRequest


def feed_all(matcher: StopMatcher, pieces: list[str]) -> tuple[str, bool]:
    out = []
    for piece in pieces:
        text, hit = matcher.feed(piece)
        out.append(text)
        if hit:
            return "".join(out), True
    return "".join(out) + matcher.flush(), False


def test_stop_string_split_across_tokens_is_found_and_cut() -> None:
    assert feed_all(StopMatcher(("END",)), ["Hello E", "N", "D more"]) == ("Hello ", True)


def test_partial_stop_prefix_that_does_not_complete_is_released() -> None:
    matcher = StopMatcher(("\n\n",))
    assert matcher.feed("a\n") == ("a", False)
    assert matcher.feed("b") == ("\nb", False)


def test_no_stops_passes_text_straight_through() -> None:
    assert StopMatcher(()).feed("abc") == ("abc", False)


def test_sampling_reads_openai_fields_and_defaults() -> None:
    s = sampling_of({"max_completion_tokens": 7, "temperature": 0, "stop": "x", "seed": 3}, 1024)
    assert (s.max_tokens, s.temperature, s.stop, s.seed) == (7, 0.0, ("x",), 3)
    assert sampling_of({}, 99).max_tokens == 99
    assert sampling_of({"stream_options": {"include_usage": True}}, 1).include_usage


def test_more_than_one_choice_is_refused() -> None:
    with pytest.raises(InvalidRequest, match="n must be 1"):
        sampling_of({"n": 2}, 10)


@pytest.mark.parametrize(
    ("text", "oom"),
    [
        ("CUDA out of memory", True),
        ("std::bad_alloc", True),
        ("process Killed", True),
        ("[metal] Resource exhausted", True),
        ("room is not a word here", False),
        ("failed to load model: invalid magic", False),
    ],
)
def test_oom_classification_uses_whole_words(text: str, oom: bool) -> None:
    assert is_oom(RuntimeError(text)) is oom


def test_load_failure_messages_carry_guidance() -> None:
    kind, message = describe_load_failure("x", ValueError("invalid magic number"))
    assert kind == "load_failed"
    assert "invalid magic number" in message
    assert "re-download" in message
