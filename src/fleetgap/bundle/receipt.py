"""Receipts: one per loaded bundle under DATA/state/receipts/, and the holding receipt that
`fleetgap bundle receipt` prints for `bundle create --since` (see docs/bundle-format.md)."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fleetgap.bundle.manifest import BUNDLE_ID, TOP_FOLDERS
from fleetgap.errors import FleetgapError
from fleetgap.pgp.keys import PublicKey, SecretKey
from fleetgap.pgp.signatures import sign_bytes, verify_own_signature
from fleetgap.store import DataDir, is_temporary_name

FORMAT = "fleetgap-receipt"


@dataclass(frozen=True)
class Receipt:
    generated: str
    bundles: tuple[dict[str, Any], ...]
    files: tuple[dict[str, Any], ...]  # {"path", "sha256", "size"}
    signer: str | None = None

    @property
    def by_path(self) -> dict[str, dict[str, Any]]:
        return {item["path"]: item for item in self.files}


def receipts_dir(data: DataDir) -> Path:
    return data.state / "receipts"


def loaded_receipts(data: DataDir) -> list[dict[str, Any]]:
    """Receipts of loaded bundles, oldest sequence first."""
    folder = receipts_dir(data)
    found = []
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else ():
        found.append(json.loads(path.read_text()))
    return found


def unseen_files(data: DataDir, bundle_id: str) -> list[str]:
    """What the finished load of `bundle_id` brought that a listing of DATA here does not show
    yet, its receipt first. A server on another host sharing DATA over NFS may see the new
    generation file before its cached view of the folders catches up: it waits for these.
    Empty for a label that is no bundle id (a generation bumped by another job)."""
    if not BUNDLE_ID.fullmatch(bundle_id):
        return []
    folder = receipts_dir(data)
    names = _listing(folder)
    receipt = next((n for n in names if n.endswith(f"-{bundle_id}.json")), None)
    if receipt is None:
        return [f"state/receipts/*-{bundle_id}.json"]
    try:
        files = json.loads((folder / receipt).read_text())["files"]
    except (OSError, ValueError, KeyError, TypeError):
        return []  # listed but not readable here (another user's, 0600): nothing to check
    listings: dict[str, frozenset[str]] = {}
    unseen = []
    for item in files:
        parent, _, name = str(item["path"]).rpartition("/")
        if parent not in listings:
            listings[parent] = _listing(data.root / parent)
        if name not in listings[parent]:
            unseen.append(item["path"])
    return unseen


def _listing(folder: Path) -> frozenset[str]:
    try:
        return frozenset(os.listdir(folder))  # a listing, as the package index reads them
    except OSError:
        return frozenset()


def sha256_file(path: Path) -> str:
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def holding(data: DataDir) -> list[dict[str, Any]]:
    """Every file under packages/, downloads/ and keys/ with its SHA-256 and size."""
    files = []
    for top in TOP_FOLDERS:
        folder = data.root / top
        for path in sorted(folder.rglob("*")) if folder.is_dir() else ():
            relative = path.relative_to(data.root)
            if not path.is_file() or any(is_temporary_name(p) for p in relative.parts):
                continue
            files.append(
                {
                    "path": relative.as_posix(),
                    "sha256": sha256_file(path),
                    "size": path.stat().st_size,
                }
            )
    return files


def make_receipt(data: DataDir, sign_key: SecretKey | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "format": FORMAT,
        "format_version": 1,
        "generated": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "bundles": [
            {"bundle_id": r["bundle_id"], "sequence": r["sequence"]} for r in loaded_receipts(data)
        ],
        "files": holding(data),
        "signer": sign_key.fingerprint if sign_key is not None else None,
    }
    if sign_key is not None:
        body["signature"] = sign_bytes(_signed_bytes(body), sign_key).decode()
    return body


def _signed_bytes(body: dict[str, Any]) -> bytes:
    """What a receipt's signature covers: the JSON without its signature, keys sorted."""
    unsigned = {k: v for k, v in body.items() if k != "signature"}
    return json.dumps(unsigned, sort_keys=True, separators=(",", ":")).encode()


def read_receipt(path: Path, signers: Sequence[PublicKey] = ()) -> Receipt:
    """The receipt at `path`; with `signers`, its signature must verify with one of them
    under the rules for fleetgap's own signatures (SHA-256 or stronger, nothing expired)."""
    try:
        raw = json.loads(Path(path).read_text("utf-8"))
    except (OSError, ValueError) as exc:
        raise FleetgapError(f"{path}: not a readable receipt: {exc}") from None
    if not isinstance(raw, dict) or raw.get("format") != FORMAT or raw.get("format_version") != 1:
        raise FleetgapError(f"{path}: not a fleetgap receipt (format {FORMAT}, version 1)")
    if signers:
        _check_signature(path, raw, signers)
    files = raw.get("files")
    if not isinstance(files, list) or not all(
        isinstance(f, dict) and {"path", "sha256", "size"} <= set(f) for f in files
    ):
        raise FleetgapError(f"{path}: receipt files must be a list of path, sha256, size")
    return Receipt(
        str(raw.get("generated", "")),
        tuple(raw.get("bundles") or ()),
        tuple(files),
        raw.get("signer"),
    )


def _check_signature(path: Path, raw: dict[str, Any], signers: Sequence[PublicKey]) -> None:
    signature = raw.get("signature")
    if not isinstance(signature, str):
        raise FleetgapError(f"{path}: the receipt is not signed (`bundle receipt --sign-key`)")
    try:
        verify_own_signature(_signed_bytes(raw), signature.encode(), signers)
    except FleetgapError as exc:
        raise FleetgapError(f"{path}: receipt signature: {exc}") from None
