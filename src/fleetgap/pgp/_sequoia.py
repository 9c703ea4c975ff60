"""Small helpers around pysequoia that every pgp module needs."""

from __future__ import annotations

import os

# Without this, sequoia mmaps the file it signs, and the mapped pages count against
# the process's resident memory (a 2 GB artifact would show 2 GB RSS). With it,
# sequoia streams through a small buffer (anchors-and-deps §B.1).
os.environ.setdefault("SEQUOIA_DONT_MMAP", "1")


def sequoia_message(exc: BaseException) -> str:
    """pysequoia's error text on one line: `RUST_BACKTRACE` appends a whole backtrace."""
    text = str(exc).split("Stack backtrace:", 1)[0]
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return "; ".join(lines) or exc.__class__.__name__
