"""One artifact on disk with its `.sha512` and `.asc`, checked as the agent checks them.

spec: agent-artifacts §6 — the SHA-512 sidecar first (§6.1), then the detached signature
against each key in order (§6.3).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from fleetgap.errors import FleetgapError
from fleetgap.pgp.elastic_key import AGENT_KEY_FILE, ELASTIC_KEY_FILE
from fleetgap.pgp.keys import PublicKey, read_public_key
from fleetgap.pgp.sha512 import check_sha512
from fleetgap.pgp.signatures import verify_file


@dataclass(frozen=True)
class ArtifactCheck:
    path: Path
    sha512: str
    key: PublicKey
    key_origin: str

    def as_dict(self) -> dict[str, str]:
        return {
            "file": str(self.path),
            "sha512": self.sha512,
            "fingerprint": self.key.fingerprint,
            "key": str(self.key),
            "key_origin": self.key_origin,
        }


def check_artifact(path: Path, keys: Sequence[tuple[str, PublicKey]]) -> ArtifactCheck:
    """Raises ChecksumError, SignatureError or FleetgapError (missing sidecar) with the reason."""
    path = Path(path)
    sidecar = path.with_name(path.name + ".sha512")
    asc = path.with_name(path.name + ".asc")
    if not sidecar.is_file():
        raise FleetgapError(f"{sidecar} is missing (the agent needs it even with --skip-verify)")
    digest = check_sha512(path, sidecar.read_text("utf-8", "replace"), str(sidecar))
    if not asc.is_file():
        raise FleetgapError(f"{asc} is missing: the agent cannot verify the signature")
    key = verify_file(path, asc.read_bytes(), [key for _, key in keys])
    origin = next(origin for origin, candidate in keys if candidate is key)
    return ArtifactCheck(path, digest, key, origin)


def default_keys(data_dir: Path | None) -> list[tuple[str, PublicKey]]:
    """Keys in DATA/keys/ in the agent's order: Elastic's key, then GPG-KEY-elastic-agent."""
    if data_dir is None:
        return []
    found: list[tuple[str, PublicKey]] = []
    for name in (ELASTIC_KEY_FILE, AGENT_KEY_FILE):
        path = Path(data_dir) / "keys" / name
        if path.is_file():
            found.append((str(path), read_public_key(path)))
    return found
