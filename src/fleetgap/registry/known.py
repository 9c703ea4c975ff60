"""The answers the registry app has already computed, kept for the server's fast path.

The app records (`remember`) every answer that depends only on the method, the path and the
query, and every whole package file; `serving/fastpath.py` sends them again without routing.
A file answer is used only for requests without Range or conditional headers, and only while
the file's size and mtime are those recorded. A new index forgets every answer. The table
is bounded in entries and in bytes.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from starlette.types import Scope

from fleetgap.registry.holder import IndexHolder

Headers = list[tuple[bytes, bytes]]
MAX_ANSWERS = 4096
# The most the recorded answers may add up to, per worker. A body shared by several
# answers (requests whose queries parse the same, a package document) counts once.
ANSWERS_BUDGET = 128 << 20
ENTRY_OVERHEAD = 512  # bytes: the key tuple, the Answer, the table's own bookkeeping
# Request headers that change a file answer (Go's ServeContent reads them)
_FILE_CONDITIONS = frozenset(
    (
        b"range",
        b"if-range",
        b"if-match",
        b"if-none-match",
        b"if-modified-since",
        b"if-unmodified-since",
    )
)


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    headers: Headers
    body: bytes
    route: str  # the route template metrics count it under
    path: str | None = None  # a whole file, sent after the headers
    size: int = 0
    mtime: float = 0.0
    download: bool = False  # counts against --max-downloads


Key = tuple[str, str, bytes]


class KnownAnswers:
    """The recorded answers of the index being served, by (method, path, query); at most
    `limit` of them and `budget` bytes, the oldest dropped first."""

    def __init__(
        self, holder: IndexHolder, limit: int = MAX_ANSWERS, budget: int = ANSWERS_BUDGET
    ) -> None:
        self.holder = holder
        self.limit = limit
        self.budget = budget
        self.bytes = 0  # what the table holds, each distinct body once
        self._index = holder.index
        self._table: dict[Key, Answer] = {}
        self._body_users: dict[int, int] = {}  # id(body) -> how many answers hold it

    def lookup(self, scope: Scope) -> Answer | None:
        if self.holder.index is not self._index:
            self._forget_all(self.holder.index)
            return None
        key = (scope["method"], scope["path"], scope["query_string"])
        answer = self._table.get(key)
        if answer is None or answer.path is None:
            return answer
        for name, _ in scope["headers"]:
            if name in _FILE_CONDITIONS:
                return None
        try:
            info = os.stat(answer.path)
        except OSError:
            info = None
        if info is None or info.st_size != answer.size or info.st_mtime != answer.mtime:
            self._drop(key)  # changed on disk: the registry answers afresh
            return None
        return answer

    def remember(self, scope: Scope, index: object, answer: Answer) -> None:
        """Record `answer`, computed with `index`, for requests like `scope`."""
        if index is not self._index:
            return
        key = (scope["method"], scope["path"], scope["query_string"])
        self._drop(key)
        if self._own_size(key, answer) + len(answer.body) > self.budget:
            return
        table = self._table
        table[key] = answer
        self.bytes += self._own_size(key, answer)
        users = self._body_users
        body = id(answer.body)
        users[body] = users.get(body, 0) + 1
        if users[body] == 1:
            self.bytes += len(answer.body)
        while len(table) > self.limit or self.bytes > self.budget:
            self._drop(next(iter(table)))  # the oldest: first in, first out

    def _drop(self, key: Key) -> None:
        answer = self._table.pop(key, None)
        if answer is None:
            return
        self.bytes -= self._own_size(key, answer)
        body = id(answer.body)
        left = self._body_users[body] - 1
        if left:
            self._body_users[body] = left
        else:
            del self._body_users[body]
            self.bytes -= len(answer.body)

    def _forget_all(self, index: object) -> None:
        self._index, self._table, self._body_users, self.bytes = index, {}, {}, 0

    @staticmethod
    def _own_size(key: Key, answer: Answer) -> int:
        """An answer's bytes besides its body: its key, headers and file path."""
        headers = sum(len(name) + len(value) for name, value in answer.headers)
        return ENTRY_OVERHEAD + len(key[1]) + len(key[2]) + headers + len(answer.path or "")
