"""Receipts: what a closed-side data directory holds, for `bundle create --since`.

`fleetgap bundle receipt --data DIR` prints the holding of DIR's packages/, downloads/ and
keys/ (paths, sizes, SHA-256) and the bundles loaded there (DIR/state/receipts/). Format in
docs/bundle-format.md and the bundle contract.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fleetgap.bundle.manifest import TOP_FOLDERS
from fleetgap.errors import FleetgapError
from fleetgap.store import DataDir, is_temporary_name

RECEIPT_FORMAT = "fleetgap-receipt"


@dataclass(frozen=True)
class HeldFile:
    path: str
    sha256: str
    size: int


@dataclass(frozen=True)
class Receipt:
    generated: str
    bundles: tuple[dict[str, Any], ...]  # {"bundle_id", "sequence"}
    files: tuple[HeldFile, ...]

    def by_path(self) -> dict[str, HeldFile]:
        return {held.path: held for held in self.files}

    def as_dict(self) -> dict[str, Any]:
        return {
            "format": RECEIPT_FORMAT,
            "format_version": 1,
            "generated": self.generated,
            "bundles": list(self.bundles),
            "files": [{"path": f.path, "sha256": f.sha256, "size": f.size} for f in self.files],
        }


def holding_receipt(data: DataDir) -> Receipt:
    """Every file DIR serves (packages/, downloads/, keys/), hashed, and the loaded bundles."""
    files = []
    for folder in TOP_FOLDERS:
        top = data.root / folder
        for path in sorted(top.rglob("*")) if top.is_dir() else ():
            relative = path.relative_to(data.root).as_posix()
            if not path.is_file() or any(is_temporary_name(p) for p in relative.split("/")):
                continue
            with open(path, "rb") as handle:
                digest = hashlib.file_digest(handle, "sha256").hexdigest()
            files.append(HeldFile(relative, digest, path.stat().st_size))
    bundles = []
    receipts = data.state / "receipts"
    for path in sorted(receipts.glob("*.json")) if receipts.is_dir() else ():
        loaded = json.loads(path.read_text())
        bundles.append({"bundle_id": loaded["bundle_id"], "sequence": loaded["sequence"]})
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return Receipt(now, tuple(bundles), tuple(files))


def read_receipt(path: Path) -> Receipt:
    """A receipt file as `bundle receipt` writes it; FleetgapError naming what is wrong."""
    try:
        raw = json.loads(Path(path).read_text("utf-8"))
    except OSError as exc:
        raise FleetgapError(f"cannot read receipt {path}: {exc.strerror}") from None
    except ValueError as exc:
        raise FleetgapError(f"{path}: not a receipt (not JSON: {exc})") from None
    if not isinstance(raw, dict) or raw.get("format") != RECEIPT_FORMAT:
        raise FleetgapError(f"{path}: not a fleetgap receipt")
    if raw.get("format_version") != 1:
        raise FleetgapError(f"{path}: receipt format_version {raw.get('format_version')!r}")
    try:
        files = tuple(
            HeldFile(str(f["path"]), str(f["sha256"]), int(f["size"])) for f in raw["files"]
        )
        bundles = tuple(
            {"bundle_id": str(b["bundle_id"]), "sequence": int(b["sequence"])}
            for b in raw["bundles"]
        )
        return Receipt(str(raw["generated"]), bundles, files)
    except (KeyError, TypeError, ValueError) as exc:
        raise FleetgapError(f"{path}: receipt field missing or of the wrong type: {exc}") from None
