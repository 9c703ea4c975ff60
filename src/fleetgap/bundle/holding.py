"""What the closed side already holds, read from its receipt (`bundle receipt` output),
and the delta it implies: files whose path and SHA-256 it lists stay out of the bundle.

The receipt itself is read by `fleetgap.bundle.receipt.read_receipt`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from fleetgap.bundle.manifest import FileEntry
from fleetgap.bundle.receipt import FORMAT as RECEIPT_FORMAT
from fleetgap.bundle.receipt import read_receipt
from fleetgap.pgp.keys import PublicKey


@dataclass(frozen=True)
class Holding:
    document: Mapping[str, Any]  # the receipt as read: the delta's `base`
    files: frozenset[tuple[str, str]]  # (path, sha256)

    @property
    def paths(self) -> frozenset[str]:
        return frozenset(path for path, _ in self.files)

    def holds(self, path: str, sha256: str) -> bool:
        return (path, sha256) in self.files


def read_holding(path: Path, signers: Sequence[PublicKey] = ()) -> Holding:
    receipt = read_receipt(path, signers)
    document = {
        "format": RECEIPT_FORMAT,
        "format_version": 1,
        "generated": receipt.generated,
        "bundles": list(receipt.bundles),
        "signer": receipt.signer,
    }
    return Holding(document, frozenset((f["path"], f["sha256"].lower()) for f in receipt.files))


def as_delta(entries: Iterable[FileEntry], holding: Holding | None) -> list[FileEntry]:
    """Every entry; those the closed side holds (same path and SHA-256) with in_bundle False."""
    if holding is None:
        return list(entries)
    return [replace(e, in_bundle=not holding.holds(e.path, e.sha256)) for e in entries]
