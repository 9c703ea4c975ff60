"""What the closed side already holds, read from its receipt (`bundle receipt` output),
and the delta it implies: files whose path and SHA-256 it lists stay out of the bundle.

spec: bundle-contract "Receipts and state". The format helper owns receipts
(`fleetgap.bundle.receipt.read_receipt`); until that exists here, this reads the JSON.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from fleetgap.bundle.manifest import FileEntry
from fleetgap.errors import FleetgapError

RECEIPT_FORMAT = "fleetgap-receipt"


@dataclass(frozen=True)
class Holding:
    document: Mapping[str, Any]  # the receipt as read: the delta's `base`
    files: frozenset[tuple[str, str]]  # (path, sha256)

    @property
    def paths(self) -> frozenset[str]:
        return frozenset(path for path, _ in self.files)

    def holds(self, path: str, sha256: str) -> bool:
        return (path, sha256) in self.files


def read_holding(path: Path) -> Holding:
    try:
        document = json.loads(Path(path).read_text("utf-8"))
    except OSError as exc:
        raise FleetgapError(f"cannot read receipt {path}: {exc.strerror}") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise FleetgapError(f"{path}: not a JSON receipt ({exc})") from None
    if not isinstance(document, dict) or document.get("format") != RECEIPT_FORMAT:
        raise FleetgapError(f"{path}: not a fleetgap receipt (expected format {RECEIPT_FORMAT!r})")
    files = document.get("files")
    if not isinstance(files, list) or not all(
        isinstance(f, dict) and isinstance(f.get("path"), str) and isinstance(f.get("sha256"), str)
        for f in files
    ):
        raise FleetgapError(f"{path}: the receipt's files must each have a path and a sha256")
    return Holding(document, frozenset((f["path"], f["sha256"].lower()) for f in files))


def as_delta(entries: Iterable[FileEntry], holding: Holding | None) -> list[FileEntry]:
    """Every entry; those the closed side holds (same path and SHA-256) with in_bundle False."""
    if holding is None:
        return list(entries)
    return [replace(e, in_bundle=not holding.holds(e.path, e.sha256)) for e in entries]
