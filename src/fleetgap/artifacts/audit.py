"""Re-verify what is published under DATA/downloads/ (after a bundle load, or to audit).

Every file that is not a sidecar must have a `.sha512` that matches it under the agent's
rules and an `.asc` that one of the trusted keys verifies (spec: agent-artifacts §6.1, §6.3).
Elastic Defend's files are checked their own way (defend.py): each manifest zip must read,
each artifact a manifest lists must have the entry's sizes and SHA-256s; an artifact no
manifest lists any more (left by an older one) is not checked.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from fleetgap.artifacts import defend
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
    listed = _defend_listed(root)
    binaries = sorted(
        path
        for path in root.rglob("*")
        if path.is_file()
        and not path.name.endswith(SIDECAR_SUFFIXES)
        and not any(is_temporary_name(part) for part in path.relative_to(root).parts)
    )
    trusted = [(str(key), key) for key in keys]

    def finding(path: Path) -> Finding:
        relative = path.relative_to(root).as_posix()
        if relative.startswith(DEFEND_FOLDER):
            return Finding(relative, _defend_problem(path, relative, listed))
        return Finding(relative, _problem(path, trusted))

    def checked(path: Path) -> bool:  # not an artifact an older Defend manifest left
        relative = path.relative_to(root).as_posix()
        if not relative.startswith(DEFEND_FOLDER) or relative.startswith(DEFEND_MANIFESTS):
            return True
        return relative in listed

    # hashing releases the GIL: files are checked side by side
    with ThreadPoolExecutor(max(1, workers)) as pool:
        return list(pool.map(finding, [p for p in binaries if checked(p)]))


DEFEND_FOLDER = "endpoint/"  # relative to downloads/
DEFEND_MANIFESTS = defend.MANIFEST_FOLDER.removeprefix("downloads/") + "/"


def _defend_listed(root: Path) -> dict[str, defend.DefendEntry | str]:
    """Path (relative to downloads/) → its entry in a Defend manifest; a manifest that does
    not read → the reason."""
    found: dict[str, defend.DefendEntry | str] = {}
    folder = root / DEFEND_MANIFESTS
    for path in sorted(folder.glob("*.zip")) if folder.is_dir() else ():
        relative = path.relative_to(root).as_posix()
        try:
            manifest = defend.read_manifest_zip(path, relative)
        except FleetgapError as exc:
            found[relative] = str(exc)
            continue
        for entry in manifest.entries:
            found[entry.data_path.removeprefix("downloads/")] = entry
    return found


def _defend_problem(path: Path, relative: str, listed) -> str | None:
    if relative.startswith(DEFEND_MANIFESTS):
        problem = listed.get(relative)
        return problem if isinstance(problem, str) else None
    try:
        defend.check_artifact_file(path, listed[relative], relative)
    except FleetgapError as exc:
        return str(exc)
    return None


def _problem(path: Path, keys: list[tuple[str, PublicKey]]) -> str | None:
    for sidecar in (path.with_name(path.name + suffix) for suffix in SIDECAR_SUFFIXES):
        if not sidecar.is_file():
            return f"missing {sidecar.name}"
    try:
        check_artifact(path, keys)
    except (FleetgapError, OSError) as exc:
        return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return None
