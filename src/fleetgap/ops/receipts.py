"""The bundles loaded into a data directory, from their receipts.

`bundle load` writes one receipt per bundle, `DATA/state/receipts/<sequence:012d>-<id>.json`
(notes/bundle-contract: bundle_id, sequence, created, loaded_at, fleetgap_version, delta,
signer, files). Read here for the status page and the doctor; a receipt that cannot be read
is listed with the reason rather than hidden.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

RECEIPTS = Path("state") / "receipts"


@dataclass(frozen=True)
class LoadedBundle:
    file: str
    sequence: int | None
    bundle_id: str
    created: str = ""
    loaded_at: str = ""
    delta: bool = False
    signer: str | None = None
    files: int = 0  # in the state the bundle leads to
    state_bytes: int = 0
    carried_files: int | None = None  # None: a receipt older than these fields
    carried_bytes: int | None = None
    selection: dict | None = None  # the selection the bundle was made from
    problem: str | None = None  # why the receipt could not be read


def last_loaded(data_dir: Path) -> LoadedBundle | None:
    """The bundle whose load finished last (by loaded_at, then sequence), if any."""
    readable = [b for b in loaded_bundles(data_dir) if b.problem is None]
    return max(readable, key=lambda b: (b.loaded_at, b.sequence or 0), default=None)


def loaded_timestamp(bundle: LoadedBundle) -> float | None:
    """`loaded_at` in seconds since the epoch (None when it does not parse)."""
    try:
        moment = datetime.strptime(bundle.loaded_at, "%Y-%m-%dT%H:%M:%SZ")
    except ValueError:
        return None
    return moment.replace(tzinfo=UTC).timestamp()


def loaded_bundles(data_dir: Path) -> list[LoadedBundle]:
    """Readable receipts by sequence, then the unreadable ones."""
    folder = Path(data_dir) / RECEIPTS
    found = [_read(path) for path in sorted(folder.glob("*.json"))] if folder.is_dir() else []
    return sorted(found, key=lambda b: (b.problem is not None, b.sequence or 0, b.file))


def _read(path: Path) -> LoadedBundle:
    try:
        receipt = json.loads(path.read_text("utf-8"))
        sequence = receipt["sequence"]
        if not isinstance(sequence, int) or isinstance(sequence, bool):
            raise ValueError(f"sequence is not an integer: {sequence!r}")
        return LoadedBundle(
            file=path.name,
            sequence=sequence,
            bundle_id=str(receipt["bundle_id"]),
            created=str(receipt.get("created") or ""),
            loaded_at=str(receipt.get("loaded_at") or ""),
            delta=bool(receipt.get("delta")),
            signer=receipt.get("signer") or None,
            files=len(receipt.get("files") or ()),
            state_bytes=sum(_count(f.get("size")) for f in receipt.get("files") or ()),
            carried_files=_count_or_none(receipt.get("carried_files")),
            carried_bytes=_count_or_none(receipt.get("carried_bytes")),
            selection=receipt["selection"] if isinstance(receipt.get("selection"), dict) else None,
        )
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if isinstance(exc, KeyError):
            reason = f"no {exc} field"
        return LoadedBundle(path.name, None, path.stem, problem=reason)


def _count(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0


def _count_or_none(value: object) -> int | None:
    return _count(value) if value is not None else None
