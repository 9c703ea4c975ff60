"""The in-memory package index: every package found in the package paths, in index order.

spec: epr-api §5.1, §5.4.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class LoadOptions:
    paths: tuple[Path, ...]
    validate: bool = True
    require_signatures: bool = True
    verify_keys: tuple[Path, ...] = ()
    workers: int = 1


@dataclass(frozen=True)
class PackageIndex:
    packages: tuple = field(default_factory=tuple)

    def __len__(self) -> int:
        return len(self.packages)


def load_index(options: LoadOptions) -> PackageIndex:
    """Scan the package paths (zip indexer first, then directories).

    A broken package is refused with one warning log line naming the file and the reason;
    the others are still indexed. A missing or empty path gives an empty index (warning).
    """
    raise NotImplementedError
