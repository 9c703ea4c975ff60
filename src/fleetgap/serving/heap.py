"""The serving process's heap: the index lives as long as the process, so the cyclic garbage
collector is told to leave it alone.

CPython's collector walks every tracked object on each full collection. With 10,000 package
versions indexed that is millions of objects, and a full collection now and then in the
middle of requests took a quarter of the requests/s on small answers (bench/README.md).
`settle`, called once the index is loaded, collects and then freezes what is left
(`gc.freeze`): frozen objects are never walked again. When a new index replaces the old one
(watcher, bundle load), `resettle` unfreezes first, so the old index can be collected.
"""

from __future__ import annotations

import gc


def settle() -> None:
    """Collect what is garbage now, then freeze the rest out of future collections.

    What is frozen already (the index a forked worker inherited) is not walked again, so
    its memory stays shared with the parent."""
    gc.collect()
    gc.freeze()


def resettle() -> None:
    """After the index was replaced: unfreeze, so the old index can be collected, then settle."""
    gc.unfreeze()
    settle()


def settled() -> bool:
    """Whether this process froze its heap (a server does; an app built in a test does not)."""
    return gc.get_freeze_count() > 0
