"""`.sha512` sidecars, read and checked with exactly the agent's rules.

spec: agent-artifacts §6.1 — each line is split on whitespace and must give exactly two
fields; leading `*` (sha512sum's binary marker) is stripped from the second; it must
equal the artifact's base name exactly; the last matching line wins; the value is
compared as a string with the lowercase hex digest (upper case or truncated fails).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from fleetgap.errors import FleetgapError


class ChecksumError(FleetgapError):
    """`kind` is "not_found" (no line for the file; the agent keeps the files) or
    "mismatch" (the agent deletes the file and its sidecar)."""

    def __init__(self, message: str, kind: str) -> None:
        super().__init__(message)
        self.kind = kind


def expected_sha512(sidecar_text: str, basename: str) -> str | None:
    """The hash the sidecar gives for `basename`, or None if no line names it."""
    found = None
    for line in sidecar_text.splitlines():
        fields = line.split()
        if len(fields) != 2:
            continue
        if fields[1].lstrip("*") == basename:
            found = fields[0]
    return found


def file_sha512(path: Path) -> str:
    """Lowercase hex SHA-512 of the file, streamed."""
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha512").hexdigest()


def sidecar_line(path: Path) -> str:
    """The canonical sidecar content Elastic serves: `<hex>  <basename>\\n`."""
    return f"{file_sha512(path)}  {Path(path).name}\n"


def check_sha512(path: Path, sidecar_text: str, sidecar_name: str | None = None) -> str:
    """The verified digest; raises ChecksumError with the agent's reason."""
    path = Path(path)
    expected = sidecar_sha512(path, sidecar_text, sidecar_name)
    return compare_sha512(path, expected, file_sha512(path))


def sidecar_sha512(path: Path, sidecar_text: str, sidecar_name: str | None = None) -> str:
    """The digest the sidecar gives for `path`; ChecksumError "not_found" if none."""
    path = Path(path)
    expected = expected_sha512(sidecar_text, path.name)
    if expected is None:
        where = sidecar_name or f"{path}.sha512"
        raise ChecksumError(f'checksum for "{path.name}" was not found in "{where}"', "not_found")
    return expected


def compare_sha512(path: Path, expected: str, computed: str) -> str:
    """`computed` when it equals `expected` (as strings, like the agent); else ChecksumError."""
    if expected != computed:
        raise ChecksumError(
            f"checksum mismatch for {path}: expected {expected}, computed {computed}", "mismatch"
        )
    return computed
