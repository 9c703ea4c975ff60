"""Re-verify what is published under DATA/downloads/ (after a bundle load, or to audit).

Every file that is not a sidecar must have a `.sha512` that matches it under the agent's
rules and an `.asc` that one of the trusted keys verifies (spec: agent-artifacts §6.1, §6.3).
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from fleetgap.errors import FleetgapError
from fleetgap.pgp.artifact_check import check_artifact
from fleetgap.pgp.keys import PublicKey
from fleetgap.store import DataDir, is_temporary_name

SIDECAR_SUFFIXES = (".sha512", ".asc")


@dataclass(frozen=True)
class Finding:
    path: str  # relative to downloads/
    problem: str | None  # None: verified


def audit_downloads(data: DataDir, keys: Sequence[PublicKey], workers: int = 2) -> list[Finding]:
    """One finding per published binary, in path order."""
    root = data.downloads
    binaries = sorted(
        path
        for path in root.rglob("*")
        if path.is_file()
        and not path.name.endswith(SIDECAR_SUFFIXES)
        and not any(is_temporary_name(part) for part in path.relative_to(root).parts)
    )
    trusted = [(str(key), key) for key in keys]

    def finding(path: Path) -> Finding:
        return Finding(path.relative_to(root).as_posix(), _problem(path, trusted))

    # hashing releases the GIL: files are checked side by side
    with ThreadPoolExecutor(max(1, workers)) as pool:
        return list(pool.map(finding, binaries))


def _problem(path: Path, keys: list[tuple[str, PublicKey]]) -> str | None:
    for sidecar in (path.with_name(path.name + suffix) for suffix in SIDECAR_SUFFIXES):
        if not sidecar.is_file():
            return f"missing {sidecar.name}"
    try:
        check_artifact(path, keys)
    except (FleetgapError, OSError) as exc:
        return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return None
