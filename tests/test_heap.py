"""A settled heap keeps the index out of the cyclic collector, and lets an old one go."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest

from fleetgap.serving import heap


class Node:
    def __init__(self) -> None:
        self.me = self  # a reference cycle: only the cyclic collector frees it


@pytest.fixture
def clean_heap() -> Iterator[None]:
    gc.unfreeze()
    yield
    gc.unfreeze()  # the test process must not keep a frozen heap


def test_settle_freezes_what_lives(clean_heap: None) -> None:
    index = [Node() for _ in range(100)]
    assert not heap.settled()
    heap.settle()
    assert heap.settled()
    assert gc.get_freeze_count() >= len(index)


def test_a_frozen_index_is_kept_until_resettle_lets_it_go(clean_heap: None) -> None:
    old = Node()
    gone = weakref.ref(old)
    heap.settle()
    del old
    gc.collect()
    assert gone() is not None  # frozen: the collector does not look at it
    heap.resettle()
    assert gone() is None
    assert heap.settled()
