"""Property tests of the pure scheduler: random event sequences, invariants checked after each."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from hypothesis import given, settings
from hypothesis import strategies as st

from local_lattice.admission.scheduler import Scheduler
from local_lattice.admission.tickets import (
    BackendCaps,
    Cancelled,
    Decision,
    Expire,
    Grant,
    Limits,
    Reject,
    Ticket,
)

MODELS = [("b1", "b1/m1"), ("b1", "b1/m2"), ("b2", "b2/m3")]
CLIENTS = ["alice", "bob", "carol"]


@dataclass
class Harness:
    scheduler: Scheduler
    now: float = 0.0
    next_id: int = 1
    tickets: dict[int, Ticket] = field(default_factory=dict)
    ends: Counter[int] = field(default_factory=Counter)  # grant, reject, expire or cancel of a waiter
    granted: set[int] = field(default_factory=set)
    released: set[int] = field(default_factory=set)
    grant_log: list[Ticket] = field(default_factory=list)

    def apply(self, decisions: list[Decision]) -> None:
        for decision in decisions:
            self.ends[decision.ticket_id] += 1
            if isinstance(decision, Grant):
                self.granted.add(decision.ticket_id)
                self.grant_log.append(self.tickets[decision.ticket_id])
            if isinstance(decision, Reject | Expire):
                assert decision.rejection.retry_after >= 1
                ticket = self.tickets[decision.ticket_id]
                if decision.rejection.kind == "deadline_exceeded":
                    assert ticket.deadline is not None
                    assert ticket.deadline <= self.now

    def check(self) -> None:
        s, limits = self.scheduler, self.scheduler.limits
        inflight = s.inflight()
        waiting = s.waiting()
        assert limits.global_cap <= 0 or len(inflight) <= limits.global_cap
        per_model = Counter(t.model for t in inflight)
        per_backend = Counter(t.backend for t in inflight)
        for model, n in per_model.items():
            cap = limits.caps(model.split("/")[0]).per_model
            assert cap <= 0 or n <= cap
        for backend, n in per_backend.items():
            cap = limits.caps(backend).max_concurrency
            assert cap <= 0 or n <= cap
        assert len(waiting) <= limits.queue_max_total
        for model, n in Counter(t.model for t in waiting).items():
            assert n <= limits.queue_max_per_model, model
        for ticket in waiting:
            assert ticket.expires > self.now  # nobody waits past its budget or deadline
            assert not s.has_room(ticket.model, ticket.backend)  # work-conserving
            assert self.ends[ticket.id] == 0
        for ticket in inflight:
            assert self.ends[ticket.id] == 1
            assert ticket.id in self.granted
        assert all(n <= 1 for n in self.ends.values())  # every ticket ends exactly once


arrive = st.tuples(
    st.just("arrive"),
    st.integers(0, len(MODELS) - 1),
    st.sampled_from(CLIENTS),
    st.integers(-2, 2),
    st.one_of(st.none(), st.floats(-1.0, 30.0)),
    st.floats(0.0, 20.0),
)
release = st.tuples(st.just("release"), st.integers(0, 10_000))
cancel = st.tuples(st.just("cancel"), st.integers(0, 10_000))
tick = st.tuples(st.just("tick"), st.floats(0.0, 5.0))
ops = st.lists(st.one_of(arrive, arrive, release, cancel, tick), max_size=120)
limits_st = st.builds(
    Limits,
    queue_max_per_model=st.integers(0, 5),
    queue_max_total=st.integers(0, 8),
    global_cap=st.integers(0, 3),
    backends=st.fixed_dictionaries(
        {"b1": st.builds(BackendCaps, max_concurrency=st.integers(0, 3), per_model=st.integers(0, 2))}
    ),
    default_backend=st.builds(BackendCaps, max_concurrency=st.integers(0, 2), per_model=st.integers(0, 2)),
)


def run(limits: Limits, events: list[tuple[object, ...]]) -> Harness:
    h = Harness(Scheduler(limits))
    for op in events:
        kind = op[0]
        if kind == "arrive":
            _, m, client, priority, deadline, wait = op
            backend, model = MODELS[m]  # type: ignore[index]
            ticket = Ticket(
                id=h.next_id,
                model=model,
                backend=backend,
                client=client,  # type: ignore[arg-type]
                priority=priority,  # type: ignore[arg-type]
                arrived=h.now,
                wait_until=h.now + wait,  # type: ignore[operator]
                deadline=None if deadline is None else h.now + deadline,  # type: ignore[operator]
            )
            h.next_id += 1
            h.tickets[ticket.id] = ticket
            h.apply(h.scheduler.arrive(ticket, h.now))
        elif kind == "release":
            live = sorted(h.granted - h.released)
            if live:
                tid = live[op[1] % len(live)]  # type: ignore[operator]
                h.released.add(tid)
                h.apply(h.scheduler.release(tid, h.now))
        elif kind == "cancel":
            if h.tickets:
                tid = sorted(h.tickets)[op[1] % len(h.tickets)]  # type: ignore[operator]
                if tid in h.granted:
                    h.released.add(tid)
                h.apply(h.scheduler.cancel(tid, h.now))
        else:
            h.now += op[1]  # type: ignore[operator]
            h.apply(h.scheduler.tick(h.now))
        h.check()
    return h


@settings(max_examples=300, deadline=None)
@given(limits_st, ops)
def test_caps_bounds_and_single_ending(limits: Limits, events: list[tuple[object, ...]]) -> None:
    h = run(limits, events)
    # drain: release everything granted and let all budgets run out; every ticket then has ended
    for _ in range(len(h.tickets) + 1):
        for tid in sorted(h.granted - h.released):
            h.released.add(tid)
            h.apply(h.scheduler.release(tid, h.now))
        h.now += 100.0
        h.apply(h.scheduler.tick(h.now))
        h.check()
    assert not h.scheduler.waiting()
    assert not h.scheduler.inflight()
    assert set(h.ends) == set(h.tickets)
    assert all(n == 1 for n in h.ends.values())


@settings(max_examples=200, deadline=None)
@given(limits_st, ops)
def test_a_cancelled_waiter_frees_its_place(limits: Limits, events: list[tuple[object, ...]]) -> None:
    h = run(limits, events)
    for ticket in h.scheduler.waiting():
        before = len([t for t in h.scheduler.waiting() if t.model == ticket.model])
        decisions = h.scheduler.cancel(ticket.id, h.now)
        assert Cancelled(ticket.id) in decisions
        assert not h.scheduler.is_waiting(ticket.id)
        after = len([t for t in h.scheduler.waiting() if t.model == ticket.model])
        assert after == before - 1
        h.apply(decisions)
        # the freed place takes a newcomer that a full queue would have refused
        newcomer = Ticket(h.next_id, ticket.model, ticket.backend, ticket.client, ticket.priority, h.now, h.now + 10)
        h.next_id += 1
        h.tickets[newcomer.id] = newcomer
        result = h.scheduler.arrive(newcomer, h.now)
        h.apply(result)
        assert not any(isinstance(d, Reject) and d.ticket_id == newcomer.id for d in result)
        h.check()


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.tuples(st.sampled_from(CLIENTS), st.integers(1, 8)), min_size=1, max_size=10),
    st.integers(1, 3),
)
def test_no_client_is_served_twice_while_another_waits_in_its_band(bursts: list[tuple[str, int]], cap: int) -> None:
    """Fairness bound: while client A waits in a band, any other client of that band gets at most
    one grant between two consecutive grants to A (so a waiter is served within C-1 grants of other
    clients once it heads its own line, C = clients waiting in the band)."""
    limits = Limits(
        queue_max_per_model=1000, queue_max_total=1000, default_backend=BackendCaps(max_concurrency=0, per_model=cap)
    )
    h = Harness(Scheduler(limits))
    for client, n in bursts:
        for _ in range(n):
            ticket = Ticket(h.next_id, "b/m", "b", client, 0, h.now, h.now + 1e9)
            h.next_id += 1
            h.tickets[ticket.id] = ticket
            h.apply(h.scheduler.arrive(ticket, h.now))
        h.now += 0.01
    served_since: dict[str, Counter[str]] = {c: Counter() for c in CLIENTS}
    while h.scheduler.inflight():
        tid = min(t.id for t in h.scheduler.inflight())
        before = len(h.grant_log)
        h.apply(h.scheduler.release(tid, h.now))
        for ticket in h.grant_log[before:]:
            waiting_clients = {t.client for t in h.scheduler.waiting()}
            served_since[ticket.client] = Counter()
            for other in waiting_clients - {ticket.client}:
                served_since[other][ticket.client] += 1
                assert served_since[other][ticket.client] <= 1, (other, ticket.client)
        h.now += 1.0


@settings(max_examples=150, deadline=None)
@given(st.lists(st.integers(-3, 3), min_size=2, max_size=20))
def test_grants_follow_priority_when_one_slot_serves_a_backlog(priorities: list[int]) -> None:
    limits = Limits(queue_max_per_model=100, queue_max_total=100, default_backend=BackendCaps(1, 1))
    h = Harness(Scheduler(limits))
    blocker = Ticket(0, "b/m", "b", "x", 0, 0.0, 1e9)
    h.tickets[0] = blocker
    h.apply(h.scheduler.arrive(blocker, 0.0))
    for p in priorities:
        t = Ticket(h.next_id, "b/m", "b", "x", p, h.now, 1e9)
        h.next_id += 1
        h.tickets[t.id] = t
        h.apply(h.scheduler.arrive(t, h.now))
        h.now += 0.01
    while h.scheduler.inflight():
        h.apply(h.scheduler.release(h.scheduler.inflight()[0].id, h.now))
    order = [t.priority for t in h.grant_log[1:]]
    assert order == sorted(priorities, reverse=True)
