"""A cache bounded in bytes: the most recently used entries whose sizes add up to at most
a budget. Every answer or piece a server keeps between requests is kept in one of these,
so no run of distinct requests can make a worker hold more than the budgets say."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class BoundedCache(Generic[K, V]):
    """`size(key, value)` counts an entry's bytes; an entry larger than the whole budget is
    not kept at all. Least recently used entries go first."""

    def __init__(self, budget: int, size: Callable[[K, V], int]) -> None:
        self.budget = budget
        self.size = size
        self.bytes = 0
        self._entries: OrderedDict[K, tuple[V, int]] = OrderedDict()
        # (value, size) or None, without marking the entry used: one C call, for a path run
        # per request that can do without least-recently-used order (first in, first out)
        self.peek: Callable[[K], tuple[V, int] | None] = self._entries.get

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: K) -> V | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        self._entries.move_to_end(key)
        return entry[0]

    def put(self, key: K, value: V) -> None:
        size = self.size(key, value)
        self.discard(key)
        if size > self.budget:
            return
        self._entries[key] = (value, size)
        self.bytes += size
        while self.bytes > self.budget:
            _, (_, dropped) = self._entries.popitem(last=False)
            self.bytes -= dropped

    def discard(self, key: K) -> None:
        entry = self._entries.pop(key, None)
        if entry is not None:
            self.bytes -= entry[1]

    def clear(self) -> None:
        self._entries.clear()
        self.bytes = 0

    def values(self) -> list[V]:
        return [value for value, _ in self._entries.values()]
