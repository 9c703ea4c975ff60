"""The answers the registry app has already computed, kept for the server's fast path.

The app records (`remember`) every answer that depends only on the method, the path and the
query, and every whole package file; `serving/fastpath.py` sends them again without routing.
A file answer is used only for requests without Range or conditional headers, and only while
the file's size and mtime are those recorded. A new index forgets every answer.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from starlette.types import Scope

from fleetgap.registry.holder import IndexHolder

Headers = list[tuple[bytes, bytes]]
MAX_ANSWERS = 4096
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


class KnownAnswers:
    """The recorded answers of the index being served, by (method, path, query)."""

    def __init__(self, holder: IndexHolder, limit: int = MAX_ANSWERS) -> None:
        self.holder = holder
        self.limit = limit
        self._index = holder.index
        self._table: dict[tuple[str, str, bytes], Answer] = {}

    def lookup(self, scope: Scope) -> Answer | None:
        if self.holder.index is not self._index:
            self._index, self._table = self.holder.index, {}
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
            self._table.pop(key, None)  # changed on disk: the registry answers afresh
            return None
        return answer

    def remember(self, scope: Scope, index: object, answer: Answer) -> None:
        """Record `answer`, computed with `index`, for requests like `scope`."""
        if index is not self._index:
            return
        table = self._table
        if len(table) >= self.limit:
            del table[next(iter(table))]  # the oldest: first in, first out
        table[(scope["method"], scope["path"], scope["query_string"])] = answer
