"""SHA-256 updates on one worker thread, so hashing overlaps the caller's reads and writes.

hashlib releases the GIL while it hashes a large buffer, and file reads and writes release
it too; a bundle write hashes every byte twice (the member's SHA-256, the part's payload
SHA-256), so doing those updates beside the I/O instead of between it is most of the speed.
One worker runs the updates in the order they were submitted, so each digest sees its bytes
in order; at most `depth` chunks wait, so memory stays bounded.
"""

from __future__ import annotations

from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any


class HashPipe:
    def __init__(self, depth: int = 8) -> None:
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="fleetgap-hash")
        self._pending: deque[Future[None]] = deque()
        self._depth = depth

    def update(self, digest: Any, data: bytes | memoryview) -> None:
        """`digest.update(data)`, later; `data` must not change until `wait` (bytes or a
        view of bytes: both immutable)."""
        self._pending.append(self._pool.submit(digest.update, data))
        while len(self._pending) > self._depth:
            self._pending.popleft().result()

    def wait(self) -> None:
        """Every update submitted so far is done (read a digest only after this)."""
        while self._pending:
            self._pending.popleft().result()

    def close(self) -> None:
        try:
            self.wait()
        finally:
            self._pool.shutdown(wait=True)

    def __enter__(self) -> HashPipe:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
