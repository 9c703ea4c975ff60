"""Package signatures as Kibana judges them: verified, unverified or unknown.

spec: kibana-fleet-client §6 — with no configured key, or no `.sig`, the status is
`unknown`; a `.sig` that is not armored PGP makes Kibana's download fail outright (HTTP
500); otherwise the signature over the zip's bytes decides `verified` / `unverified`, and
the result carries the configured key's 16-hex-digit key ID in lower case.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from fleetgap.pgp.keys import PublicKey, SecretKey
from fleetgap.pgp.signatures import (
    SignatureError,
    SignedData,
    check_key,
    parse_detached_signature,
    sign_file,
)

VERIFIED = "verified"
UNVERIFIED = "unverified"
UNKNOWN = "unknown"


@dataclass(frozen=True)
class PackageVerification:
    status: str  # verified | unverified | unknown
    key_id: str | None  # Kibana's verification_key_id (lower case), when a key is configured
    reason: str

    def as_dict(self) -> dict[str, str | None]:
        return {
            "verification_status": self.status,
            "verification_key_id": self.key_id,
            "reason": self.reason,
        }


def signature_path(zip_path: Path) -> Path:
    return Path(zip_path).with_name(Path(zip_path).name + ".sig")


def sign_package(zip_path: Path, key: SecretKey) -> Path:
    """Write `<zip>.sig`, an armored detached signature of the zip, as the registry serves."""
    return sign_file(zip_path, key, signature_path(zip_path))


def verify_package(
    zip_path: Path, key: PublicKey | None, signature: bytes | None
) -> PackageVerification:
    """Kibana's verdict. Raises SignatureError where Kibana's download itself would fail."""
    if key is None:
        return PackageVerification(UNKNOWN, None, "no package verification key configured")
    key_id = key.key_id.lower()
    if signature is None:
        return PackageVerification(UNKNOWN, key_id, "the package has no signature")
    try:
        parsed = parse_detached_signature(signature)
    except SignatureError as exc:
        raise SignatureError(
            f"{exc}: Kibana fails the download of this package (HTTP 500); serve a real "
            "armored detached signature or none"
        ) from None
    problem = check_key(SignedData(path=Path(zip_path)), parsed, key)
    if problem is None:
        return PackageVerification(VERIFIED, key_id, f"signature verified by {key}")
    return PackageVerification(UNVERIFIED, key_id, problem)


def verify_package_file(zip_path: Path, key: PublicKey | None) -> PackageVerification:
    """`verify_package` with the signature read from `<zip>.sig` beside the zip."""
    sig = signature_path(zip_path)
    return verify_package(zip_path, key, sig.read_bytes() if sig.is_file() else None)
