"""Verification results for the status page: computed once per file state, in the background.

A result is keyed by what it depends on (paths, sizes, mtimes, key fingerprints), so a
replaced file is checked again. Checks run in a small pool; a page waits for them until its
deadline and shows the rest as `checking` (a mirror of many GB is not hashed inside one
request), to be filled in on a later view.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout

CHECKING = "checking"
Verdict = tuple[str, str]  # (state, detail)


class Verdicts:
    def __init__(self, workers: int = 2, limit: int = 50_000) -> None:
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="fleetgap-status")
        self._done: dict[Hashable, Verdict] = {}
        self._pending: dict[Hashable, Future[Verdict]] = {}
        self._lock = threading.Lock()
        self._limit = limit
        self.finished = 0  # checks done so far: a page showing `checking` is stale after

    def get(self, token: Hashable, judge: Callable[[], Verdict], deadline: float) -> Verdict:
        """The verdict for `token`, waiting for `judge` (run once) until `deadline`
        (time.monotonic())."""
        submitted = False
        with self._lock:
            if token in self._done:
                return self._done[token]
            future = self._pending.get(token)
            if future is None:
                future = self._pool.submit(judge)
                self._pending[token] = future
                submitted = True
        if submitted:  # outside the lock: a finished future calls back at once, here
            future.add_done_callback(lambda f, t=token: self._store(t, f))
        try:
            return future.result(timeout=max(0.0, deadline - time.monotonic()))
        except FutureTimeout:
            return CHECKING, "being verified in the background: reload the page"

    def _store(self, token: Hashable, future: Future[Verdict]) -> None:
        with self._lock:
            self.finished += 1
            self._pending.pop(token, None)
            if future.exception() is not None:
                return  # judges report problems as verdicts; a crash is tried again
            if len(self._done) >= self._limit:  # mostly stale states of replaced files
                self._done.clear()
            self._done[token] = future.result()
