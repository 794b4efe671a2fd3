"""The fleet's pure choice: session keys, rendezvous order, bounded-load affinity, power of two
choices, round robin and slow start."""

from __future__ import annotations

import os
import random
import subprocess
import sys
from collections import Counter

import pytest

from local_lattice.routing.fleet import (
    Member,
    affinity,
    capacity,
    conversation_prefix,
    least_loaded,
    rendezvous,
    round_robin,
    session_key,
    slow_start_weight,
)

SYSTEM = {"role": "system", "content": "You are a careful agent."}


def chat(*turns: str, **extra: object) -> dict[str, object]:
    messages: list[dict[str, str]] = [SYSTEM]
    for i, text in enumerate(turns):
        messages.append({"role": "user" if i % 2 == 0 else "assistant", "content": text})
    return {"messages": messages, **extra}


def test_the_session_header_wins_then_prompt_cache_key_then_user_then_the_prefix() -> None:
    body = chat("task", prompt_cache_key="pck", user="u1")
    header = session_key("chat", body, {"x-session-id": "s1"})
    assert header is not None
    assert header.source == "x-session-id"
    cache_key = session_key("chat", body, {})
    assert cache_key is not None
    assert cache_key.source == "prompt_cache_key"
    user = session_key("chat", chat("task", user="u1"), {})
    assert user is not None
    assert user.source == "user"
    prefix = session_key("chat", chat("task"), {})
    assert prefix is not None
    assert prefix.source == "prefix"
    assert len({header.digest, cache_key.digest, user.digest, prefix.digest}) == 4
    assert session_key("embeddings", {"input": "x", "user": "u1"}, {"x-session-id": "s1"}) is None


def test_a_conversation_keeps_its_prefix_key_as_it_grows() -> None:
    first = session_key("chat", chat("write a parser"), {})
    later = session_key("chat", chat("write a parser", "here it is", "now test it", "done"), {})
    other = session_key("chat", chat("write a lexer"), {})
    assert first is not None
    assert later is not None
    assert other is not None
    assert first.digest == later.digest
    assert first.digest != other.digest
    # Content given as parts is part of the key as well.
    parts = {"messages": [SYSTEM, {"role": "user", "content": [{"type": "text", "text": "write a parser"}]}]}
    keyed = session_key("chat", parts, {})
    assert keyed is not None
    assert keyed.digest != first.digest


def test_prefixes_of_plain_prompts_and_odd_bodies() -> None:
    long = "x" * 10_000
    assert conversation_prefix({"prompt": long + "a"}) == conversation_prefix({"prompt": long + "b"})
    assert conversation_prefix({"prompt": "short a"}) != conversation_prefix({"prompt": "short b"})
    assert conversation_prefix({"messages": []}) is None
    assert conversation_prefix({"messages": ["not a message"]}) is None
    assert conversation_prefix({}) is None
    assert session_key("completions", {"prompt": ""}, {}) is None
    assert session_key("chat", {"messages": [], "user": ""}, {"x-session-id": ""}) is None


def test_rendezvous_is_the_same_in_another_process_with_another_hash_seed() -> None:
    names = ["alpha", "beta", "gamma"]
    key = session_key("chat", {}, {"x-session-id": "conversation-42"})
    assert key is not None
    here = rendezvous(key.digest, names)
    code = (
        "from local_lattice.routing.fleet import rendezvous, session_key\n"
        "key = session_key('chat', {}, {'x-session-id': 'conversation-42'})\n"
        "print(','.join(rendezvous(key.digest, ['gamma', 'alpha', 'beta'])))\n"
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    there = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert there.stdout.strip().split(",") == here


def test_rendezvous_spreads_keys_and_a_leaving_backend_moves_only_its_own() -> None:
    keys = [session_key("chat", {}, {"x-session-id": f"s{i}"}) for i in range(3000)]
    digests = [k.digest for k in keys if k is not None]
    homes = {d: rendezvous(d, ["a", "b", "c"])[0] for d in digests}
    shares = Counter(homes.values())
    assert all(800 <= shares[name] <= 1200 for name in "abc"), shares
    after = {d: rendezvous(d, ["a", "b"])[0] for d in digests}
    moved = [d for d in digests if homes[d] != after[d]]
    assert all(homes[d] == "c" for d in moved)
    assert len(moved) == shares["c"]


def test_capacity_is_the_factor_times_the_mean_rounded_up() -> None:
    idle = [Member("a"), Member("b")]
    assert capacity(idle, 1.25) == 1
    assert capacity([Member("a", 1), Member("b")], 1.25) == 2
    assert capacity([Member("a", 2), Member("b")], 1.25) == 2
    assert capacity([Member("a", 10), Member("b", 6)], 1.25) == 11
    assert capacity([Member("a", 3)], 1.0) == 4


def home_and_other(names: list[str]) -> tuple[bytes, str, str]:
    key = session_key("chat", {}, {"x-session-id": "hot-session"})
    assert key is not None
    order = rendezvous(key.digest, names)
    return key.digest, order[0], order[1]


def test_a_session_goes_home_until_home_is_over_its_bound() -> None:
    digest, home, other = home_and_other(["a", "b"])
    ordered, outcome = affinity(digest, [Member("a"), Member("b")], 1.25)
    assert (ordered[0].name, outcome) == (home, "new")
    ordered, outcome = affinity(digest, [Member(home, 1), Member(other, 0)], 1.25, placed=home)
    assert (ordered[0].name, outcome) == (home, "hit")
    # A hot session: its home carries two, the other none; the bound (2) is reached, so it spills.
    ordered, outcome = affinity(digest, [Member(home, 2), Member(other, 0)], 1.25, placed=home)
    assert (ordered[0].name, outcome) == (other, "spilled")
    assert [m.name for m in ordered] == [other, home]
    # A larger factor lets it stay.
    ordered, outcome = affinity(digest, [Member(home, 2), Member(other, 0)], 2.0, placed=home)
    assert (ordered[0].name, outcome) == (home, "hit")


def test_a_session_whose_backend_is_gone_moves_and_a_remembered_one_is_kept() -> None:
    digest, home, other = home_and_other(["a", "b", "c"])
    rest = [n for n in "abc" if n != home]
    ordered, outcome = affinity(digest, [Member(n) for n in rest], 1.25, placed=home)
    assert (ordered[0].name, outcome) == (other, "moved")
    # Back again, the home does not take the session from where it was placed.
    ordered, outcome = affinity(digest, [Member(n) for n in "abc"], 1.25, placed=other)
    assert (ordered[0].name, outcome) == (other, "hit")


def test_a_recovering_backend_has_a_smaller_bound() -> None:
    digest, home, other = home_and_other(["a", "b"])
    members = [Member(home, 1, weight=0.1), Member(other, 1)]
    ordered, outcome = affinity(digest, members, 1.25, placed=None)
    assert (ordered[0].name, outcome) == (other, "spilled")
    ordered, _ = affinity(digest, [Member(home, 0, weight=0.1), Member(other, 1)], 1.25)
    assert ordered[0].name == home  # at least one call always fits


def first(n: int) -> int:
    """A draw that picks the first two members."""
    return 0


def test_least_loaded_prefers_fewer_outstanding_calls_weighted_by_latency() -> None:
    busy_fast = Member("fast", outstanding=3, latency=0.1)
    idle_slow = Member("slow", outstanding=0, latency=1.0)
    assert [m.name for m in least_loaded([busy_fast, idle_slow], first)] == ["fast", "slow"]  # 0.4 s vs 1 s
    busier = Member("fast", outstanding=12, latency=0.1)
    assert [m.name for m in least_loaded([busier, idle_slow], first)] == ["slow", "fast"]  # 1.3 s vs 1 s
    untimed = Member("new", outstanding=0)
    timed = Member("old", outstanding=1, latency=0.2)
    assert least_loaded([timed, untimed], first)[0].name == "new"  # costed at the mean latency
    warming = Member("warming", outstanding=0, latency=0.1, weight=0.1)
    steady = Member("steady", outstanding=2, latency=0.1)
    assert least_loaded([warming, steady], first)[0].name == "steady"  # 1.0 vs 0.3


def test_power_of_two_choices_spreads_equal_members_and_draws_only_two() -> None:
    rng = random.Random(7)
    members = [Member(n) for n in "abcd"]
    firsts = Counter(least_loaded(members, rng.randrange)[0].name for _ in range(4000))
    assert all(850 <= firsts[n] <= 1150 for n in "abcd"), firsts
    # Two draws always include an idle member, so the loaded one is never first.
    loaded = [Member("a", 5), Member("b"), Member("c"), Member("d")]
    assert "a" not in {least_loaded(loaded, rng.randrange)[0].name for _ in range(500)}
    ranked = least_loaded(loaded, rng.randrange)
    assert ranked[-1].name == "a"
    assert len(ranked) == 4
    assert least_loaded([Member("only")], rng.randrange) == [Member("only")]


def test_round_robin_rotates() -> None:
    members = [Member(n) for n in "abc"]
    assert [round_robin(members, t)[0].name for t in range(6)] == list("abcabc")
    assert [m.name for m in round_robin(members, 4)] == ["b", "c", "a"]
    assert round_robin([], 3) == []


@pytest.mark.parametrize(
    ("recovered_at", "now", "window", "weight"),
    [(None, 100.0, 30.0, 1.0), (100.0, 100.0, 30.0, 0.1), (100.0, 115.0, 30.0, 0.5), (100.0, 131.0, 30.0, 1.0),
     (100.0, 101.0, 0.0, 1.0)],
)  # fmt: skip
def test_slow_start_ramps_over_the_window(recovered_at: float | None, now: float, window: float, weight: float) -> None:
    assert slow_start_weight(recovered_at, now, window) == pytest.approx(weight)
