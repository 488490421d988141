"""heap.settle: what lives at start-up is exempt from later collections, garbage is not."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest

from callcenter import heap


@pytest.fixture
def thawed() -> Iterator[None]:
    """Each test starts and ends with nothing frozen (the test process is shared)."""
    gc.unfreeze()
    yield
    gc.unfreeze()


class _Node:
    def __init__(self) -> None:
        self.me = self   # a cycle: only the collector frees it


def test_what_lives_is_frozen_and_what_was_garbage_is_collected_first(thawed: None) -> None:
    garbage = _Node()
    gone = weakref.ref(garbage)
    del garbage
    kept = _Node()
    frozen = heap.settle()
    assert gone() is None                      # the collection ran before the freeze
    assert frozen == gc.get_freeze_count() > 0
    assert not any(o is kept for o in gc.get_objects())   # walked by no later collection
    later = _Node()
    assert any(o is later for o in gc.get_objects(generation=0))   # new objects are, as ever
