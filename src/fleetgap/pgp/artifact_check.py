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
from fleetgap.pgp.sha512 import compare_sha512, sidecar_sha512
from fleetgap.pgp.signatures import (
    ParsedSignature,
    Selected,
    SignatureError,
    SignedData,
    SignedDigests,
    check_signers,
    parse_detached_signature,
    verify_digests,
)


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
    """Raises ChecksumError, SignatureError or FleetgapError (missing sidecar) with the reason.

    The file is read once: the same pass hashes it for the sidecar and for the signature.
    """
    path = Path(path)
    sidecar = path.with_name(path.name + ".sha512")
    asc = path.with_name(path.name + ".asc")
    if not sidecar.is_file():
        raise FleetgapError(f"{sidecar} is missing (the agent needs it even with --skip-verify)")
    expected = sidecar_sha512(path, sidecar.read_text("utf-8", "replace"), str(sidecar))
    parsed, unusable = _signature(asc)
    trusted = [key for _, key in keys]
    signers: list[Selected] = []
    if parsed is not None:
        try:
            signers = check_signers(parsed, trusted)
        except SignatureError as exc:  # raised after the checksum, as the agent orders them
            parsed, unusable = None, exc
    digests = SignedDigests(SignedData(path=path))
    digests.read_once([signer.fields for signer in signers])
    assert digests.sha512 is not None
    digest = compare_sha512(path, expected, digests.sha512.hexdigest())
    if parsed is None:
        raise unusable or FleetgapError(f"{asc} is unusable")
    key = verify_digests(digests, parsed, trusted)
    origin = next(origin for origin, candidate in keys if candidate is key)
    return ArtifactCheck(path, digest, key, origin)


def _signature(asc: Path) -> tuple[ParsedSignature | None, FleetgapError | None]:
    """The parsed `.asc`, or why it cannot be used (raised after the checksum, as the agent
    checks the checksum first)."""
    if not asc.is_file():
        return None, FleetgapError(f"{asc} is missing: the agent cannot verify the signature")
    try:
        return parse_detached_signature(asc.read_bytes()), None
    except SignatureError as exc:
        return None, exc


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
