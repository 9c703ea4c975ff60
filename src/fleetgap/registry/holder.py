"""The index being served, held by one reference so a swap is atomic for every reader."""

from __future__ import annotations

from fleetgap.packages.index import PackageIndex


class IndexHolder:
    """The index being served; `replace` swaps in a new one atomically (one reference)."""

    def __init__(self, index: PackageIndex) -> None:
        self.index = index

    def replace(self, index: PackageIndex) -> None:
        self.index = index
