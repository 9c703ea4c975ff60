"""Re-verify what is published under DATA/downloads/ (after a bundle load, or to audit).

Every file that is not a sidecar must have a `.sha512` that matches it under the agent's
rules and an `.asc` that one of the trusted keys verifies (spec: agent-artifacts §6.1, §6.3).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from fleetgap.artifacts.verifier import Verifier
from fleetgap.errors import FleetgapError
from fleetgap.pgp.keys import PublicKey
from fleetgap.pgp.sha512 import check_sha512
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
    findings = []
    with Verifier(keys, workers) as verifier:
        for path in binaries:
            relative = path.relative_to(root).as_posix()
            findings.append(Finding(relative, _problem(path, verifier)))
    return findings


def _problem(path: Path, verifier: Verifier) -> str | None:
    checksum, signature = (path.with_name(path.name + suffix) for suffix in SIDECAR_SUFFIXES)
    try:
        check_sha512(path, checksum.read_text("utf-8", "replace"), checksum.name)
        verifier.verify(path, signature.read_bytes())
    except FileNotFoundError as exc:
        return f"missing {Path(exc.filename or '?').name}"
    except (FleetgapError, OSError) as exc:
        return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return None
