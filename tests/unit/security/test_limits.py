"""The rate limiter over a fake clock: budgets, truthful Retry-After, corrections, bounded memory."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from local_lattice.config import RateLimits
from local_lattice.errors import RateLimited
from local_lattice.security.limits import Limiter, Ticket, TokenBucket

OFF = RateLimits()


def limits(rpm: float = 0, tpm: float = 0, concurrent: int = 0) -> RateLimits:
    return RateLimits(requests_per_minute=rpm, tokens_per_minute=tpm, concurrent=concurrent)


def test_requests_per_minute_refuses_with_the_time_until_a_request_fits() -> None:
    limiter = Limiter(limits(rpm=6), OFF)  # one request every 10 s, burst 6
    for _ in range(6):
        limiter.release(limiter.admit("alice", "1.2.3.4", 0, now=100.0), None, now=100.0)
    with pytest.raises(RateLimited) as caught:
        limiter.admit("alice", "1.2.3.4", 0, now=104.0)
    assert caught.value.code == "key_requests_per_minute"
    assert caught.value.type == "rate_limit_error"
    assert caught.value.retry_after == pytest.approx(6.0)
    assert caught.value.headers["Retry-After"] == "6"
    with pytest.raises(RateLimited):
        limiter.admit("alice", "1.2.3.4", 0, now=109.9)
    limiter.admit("alice", "1.2.3.4", 0, now=110.0)  # exactly when promised


def test_a_refused_request_takes_nothing() -> None:
    limiter = Limiter(limits(rpm=60, tpm=100), OFF)
    limiter.admit("k", "ip", 150, now=0.0)  # bigger than the bucket: admitted when it is full
    with pytest.raises(RateLimited) as caught:
        limiter.admit("k", "ip", 10, now=0.0)
    assert caught.value.code == "key_tokens_per_minute"
    # 150 taken from 100: 50 in debt; 10 more needs 60 tokens at 100/60 per second = 36 s
    assert caught.value.retry_after == pytest.approx(36.0)
    limiter.admit("k", "ip", 10, now=36.0)


def test_usage_corrects_the_estimate() -> None:
    limiter = Limiter(limits(tpm=600), OFF)  # 10 tokens per second
    ticket = limiter.admit("k", "ip", 500, now=0.0)
    limiter.release(ticket, 50, now=0.0)  # really used 50: 450 come back
    limiter.admit("k", "ip", 500, now=0.0)  # 550 - 500 = 50 left
    with pytest.raises(RateLimited) as caught:
        limiter.admit("k", "ip", 100, now=0.0)
    assert caught.value.retry_after == pytest.approx(5.0)  # 50 missing at 10 per second


def test_concurrency_per_key_and_per_address() -> None:
    limiter = Limiter(limits(concurrent=2), limits(concurrent=1))
    first = limiter.admit("a", "10.0.0.1", 0, now=0.0)
    with pytest.raises(RateLimited) as caught:
        limiter.admit("b", "10.0.0.1", 0, now=0.0)
    assert caught.value.code == "ip_concurrent_requests"
    limiter.admit("a", "10.0.0.2", 0, now=0.0)
    with pytest.raises(RateLimited) as caught:
        limiter.admit("a", "10.0.0.3", 0, now=0.0)
    assert caught.value.code == "key_concurrent_requests"
    limiter.release(first, None, now=0.0)
    limiter.admit("a", "10.0.0.3", 0, now=0.0)


def test_per_key_override_and_retry_after_covers_every_budget() -> None:
    limiter = Limiter(limits(rpm=60), limits(rpm=6), overrides={"bulk": limits(rpm=600)})
    for _ in range(6):
        limiter.admit("bulk", "ip", 0, now=0.0)
    with pytest.raises(RateLimited) as caught:
        limiter.admit("bulk", "ip", 0, now=0.0)
    assert caught.value.code == "ip_requests_per_minute"
    assert caught.value.retry_after == pytest.approx(10.0)


def test_client_addresses_are_forgotten_beyond_the_bound() -> None:
    limiter = Limiter(OFF, limits(rpm=1), max_clients=16)
    for i in range(100):
        limiter.release(limiter.admit("k", f"ip{i}", 0, now=0.0), None, now=0.0)
    assert len(limiter._clients) <= 16
    busy = Limiter(OFF, limits(concurrent=1), max_clients=16)
    held = [busy.admit("k", f"ip{i}", 0, now=0.0) for i in range(20)]
    assert len(busy._clients) == 20  # requests in flight are never forgotten
    assert all(isinstance(t, Ticket) for t in held)


def test_disabled_limits_admit_everything() -> None:
    limiter = Limiter(OFF, OFF)
    assert not limiter.enabled
    for _ in range(1000):
        limiter.admit("k", "ip", 10**6, now=0.0)


@settings(max_examples=200, deadline=None)
@given(
    rate=st.integers(min_value=1, max_value=120),
    gaps=st.lists(st.floats(min_value=0, max_value=5, allow_nan=False), min_size=1, max_size=300),
)
def test_never_admits_more_than_the_bucket_allows_over_any_window(rate: int, gaps: list[float]) -> None:
    """Over any window of t seconds at most capacity + rate * t requests are admitted."""
    limiter = Limiter(limits(rpm=rate), OFF)
    now, admitted, waits = 0.0, [], []
    for gap in gaps:
        now += gap
        try:
            limiter.release(limiter.admit("k", "ip", 0, now=now), None, now=now)
        except RateLimited as exc:
            waits.append(exc.retry_after)
            continue
        admitted.append(now)
    assert all(wait > 0 for wait in waits)
    for i, start in enumerate(admitted):
        for j in range(i, len(admitted)):
            window = admitted[j] - start
            assert j - i + 1 <= rate + rate / 60 * window + 1e-6


@settings(max_examples=200, deadline=None)
@given(
    level=st.floats(min_value=-1000, max_value=100, allow_nan=False),
    amount=st.floats(min_value=0, max_value=500, allow_nan=False),
)
def test_retry_after_is_exactly_when_the_bucket_has_room(level: float, amount: float) -> None:
    def bucket() -> TokenBucket:
        return TokenBucket(capacity=100, rate=2.0, level=level, stamp=0.0)

    wait = bucket().wait(amount, 0.0)
    if wait > 0:
        assert bucket().wait(amount, wait * (1 + 1e-9) + 1e-9) == 0.0
        if wait > 1e-6:  # below that, float rounding decides
            assert bucket().wait(amount, wait * 0.99) > 0
    assert math.isfinite(wait)
