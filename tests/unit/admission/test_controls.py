"""Reading queue controls from the body and the X-MLX-* / X-Lattice-* headers."""

from __future__ import annotations

import pytest

from local_lattice.admission import PriorityPolicy, client_of, context_of
from local_lattice.errors import InvalidRequest

POLICY = PriorityPolicy(default=1, minimum=-10, maximum=10)


def ctx(queue: object = None, **headers: str):  # type: ignore[no-untyped-def]
    return context_of(queue, headers, policy=POLICY, now=100.0, wall_now=1_700_000_000.0)


@pytest.mark.parametrize(
    ("value", "expected"),
    [(5, 5), ("7", 7), (99, 10), (-99, -10), ("high", 1), (True, 1), (False, 1), (None, 1), ([3], 1), (2.9, 2)],
)
def test_priority_is_clamped_and_falls_back_to_the_default(value: object, expected: int) -> None:
    assert ctx({"priority": value}).priority == expected


def test_headers_of_both_families_and_body_precedence() -> None:
    assert ctx(**{"x-mlx-priority": "3"}).priority == 3
    assert ctx(**{"x-lattice-priority": "4", "x-mlx-priority": "3"}).priority == 4
    assert ctx({"priority": 2}, **{"x-lattice-priority": "4"}).priority == 2
    assert ctx(**{"x-mlx-max-queue-wait-ms": "1500"}).max_wait == 1.5
    assert ctx(**{"x-lattice-deadline-ms": "250"}).deadline == pytest.approx(100.25)


def test_deadline_as_epoch_milliseconds() -> None:
    epoch_ms = (1_700_000_000.0 + 2.0) * 1000
    assert ctx({"deadline_ms": epoch_ms}).deadline == pytest.approx(102.0)
    assert ctx({"deadline_ms": (1_700_000_000.0 - 5) * 1000}).deadline == pytest.approx(95.0)


@pytest.mark.parametrize(
    "queue", [{"max_queue_wait_ms": -1}, {"deadline_ms": -5}, {"max_queue_wait_ms": "soon"}, {"deadline_ms": True}]
)
def test_negative_or_non_numeric_waits_are_400(queue: dict[str, object]) -> None:
    with pytest.raises(InvalidRequest):
        ctx(queue)


def test_negative_wait_header_is_400() -> None:
    with pytest.raises(InvalidRequest):
        ctx(**{"x-mlx-max-queue-wait-ms": "-10"})


def test_queue_must_be_an_object() -> None:
    with pytest.raises(InvalidRequest):
        ctx([1])


def test_client_is_a_hash_of_the_key() -> None:
    a = client_of({"authorization": "Bearer sk-one"})
    assert a == client_of({"x-api-key": "sk-one"})
    assert a != client_of({"x-api-key": "sk-two"})
    assert "sk-one" not in a
    assert client_of({}) == "anonymous"
