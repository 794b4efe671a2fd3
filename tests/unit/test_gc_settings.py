"""After start the serving process freezes what exists and collects young objects in bigger batches."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from local_lattice import gc_settings


@pytest.fixture
def restored_gc() -> Iterator[None]:
    threshold = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*threshold)


@pytest.mark.usefixtures("restored_gc")
def test_settle_freezes_the_heap_and_raises_the_young_threshold() -> None:
    gc.unfreeze()
    older = gc.get_threshold()[1:]
    kept = [object() for _ in range(10)]  # noqa: F841 - alive across the freeze
    gc_settings.settle()
    assert gc.get_freeze_count() > 0
    assert gc.get_threshold() == (gc_settings.YOUNG_THRESHOLD, *older)
