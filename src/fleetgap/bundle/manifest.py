"""PLACEHOLDER owned by the "format" helper (branch bundle-format): only the contract's
FileEntry, so that staging can be built in parallel. On merge, take bundle-format's file."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class FileEntry:
    path: str
    size: int
    sha256: str
    verified_by: str
    key_fingerprint: str | None
    in_bundle: bool = True
