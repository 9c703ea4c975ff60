"""The status page's Elastic Defend table: per Endpoint version found under
DATA/downloads/endpoint/manifest/, its manifest_version, when the bundle that brought it was
loaded, and whether every artifact it lists is here with its size and SHA-256."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from fleetgap.artifacts import defend
from fleetgap.bundle.receipt import loaded_receipts
from fleetgap.errors import FleetgapError
from fleetgap.store import DataDir

COMPLETE, INCOMPLETE, UNREADABLE = "complete", "incomplete", "unreadable"
_MANIFEST_NAME = re.compile(r"^artifacts-(.+)\.zip$")

Judge = Callable[[Hashable, Callable[[], tuple[str, str]]], tuple[str, str]]


@dataclass(frozen=True)
class DefendRow:
    version: str
    manifest_version: str
    loaded: str  # when the bundle that brought this manifest was loaded
    state: str  # complete | incomplete | unreadable | checking
    detail: str


def defend_rows(data_dir: Path, judge: Judge) -> list[DefendRow]:
    """One row per manifest zip; `judge(token, work)` runs `work` once per file state."""
    folder = Path(data_dir) / defend.MANIFEST_FOLDER
    if not folder.is_dir():
        return []
    try:
        receipts = loaded_receipts(DataDir(Path(data_dir)))
    except (OSError, ValueError):  # a damaged receipt: the bundles table reports it
        receipts = []
    rows = []
    for path in sorted(folder.iterdir(), reverse=True):
        match = _MANIFEST_NAME.match(path.name)
        if match is None or not path.is_file():
            continue
        rows.append(_row(Path(data_dir), path, match[1], receipts, judge))
    return rows


def _row(data_dir: Path, path: Path, version: str, receipts, judge: Judge) -> DefendRow:
    try:
        if path.stat().st_size > defend.MAX_MANIFEST_ZIP:
            raise defend.DefendError(f"{path.name}: larger than {defend.MAX_MANIFEST_ZIP} bytes")
        body = path.read_bytes()
        manifest = defend.parse_manifest_zip(body, path.name)
    except (FleetgapError, OSError) as exc:
        return DefendRow(version, "?", _loaded(path, None, receipts), UNREADABLE, str(exc))
    digest = hashlib.sha256(body).hexdigest()
    loaded = _loaded(path, digest, receipts)
    files = [data_dir / entry.data_path for entry in manifest.entries]
    token = ("defend", str(path), digest, tuple(_stat(f) for f in files))

    def work() -> tuple[str, str]:
        problems = []
        for entry, file in zip(manifest.entries, files, strict=True):
            if not file.is_file():
                problems.append(f"{entry.name} missing")
                continue
            try:
                defend.check_artifact_file(file, entry, entry.name)
            except FleetgapError as exc:
                problems.append(str(exc))
        if problems:
            return INCOMPLETE, f"{len(problems)} of {len(files)}: " + "; ".join(problems[:3])
        return COMPLETE, f"all {len(files)} artifacts here with their size and SHA-256"

    state, detail = judge(token, work)
    return DefendRow(version, manifest.manifest_version, loaded, state, detail)


def _loaded(path: Path, digest: str | None, receipts) -> str:
    relative = f"{defend.MANIFEST_FOLDER}/{path.name}"
    for receipt in reversed(receipts):
        files = receipt.get("files") if isinstance(receipt, dict) else None
        if not isinstance(files, list):
            continue
        if any(
            isinstance(f, dict) and f.get("path") == relative and f.get("sha256") == digest
            for f in files
        ):
            return f"{receipt.get('loaded_at', '?')} (bundle {receipt.get('sequence', '?')})"
    try:
        stamp = datetime.fromtimestamp(path.stat().st_mtime, UTC)
    except OSError:
        return "?"
    return f"{stamp:%Y-%m-%dT%H:%M:%SZ} (file time: not brought by a loaded bundle)"


def _stat(path: Path) -> tuple[int, int] | None:
    try:
        info = path.stat()
    except OSError:
        return None
    return (info.st_size, info.st_mtime_ns)
