"""Who signed a bundle's manifest, for `bundle inspect`: the signature's issuer key ID, and
with a key that verifies it (given, or in DATA/state/bundle-signers/), its fingerprint and
user IDs."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from fleetgap.errors import FleetgapError, printable
from fleetgap.pgp.keys import PublicKey
from fleetgap.pgp.signatures import parse_detached_signature, verify_bytes


@dataclass(frozen=True)
class Signer:
    key_id: str | None  # the signature's issuer key ID (what it claims, unverified)
    fingerprint: str | None = None  # of the key that verifies it, when one was given
    user_ids: tuple[str, ...] = ()

    @property
    def verified(self) -> bool:
        return self.fingerprint is not None

    def line(self) -> str:
        if self.verified:
            shown = [printable(uid, one_line=True) for uid in self.user_ids]
            names = ", ".join(shown) or "no user ID"
            return f"signed by {self.fingerprint} ({names}): verified with a trusted signer's key"
        return (
            f"signed by key ID {self.key_id or 'unknown'}, not a trusted signer's key: give it "
            "with --trust-key (or --data DIR) to see its fingerprint and user ID"
        )

    def as_dict(self) -> dict:
        return {
            "key_id": self.key_id,
            "fingerprint": self.fingerprint,
            "user_ids": list(self.user_ids),
            "verified": self.verified,
        }


def manifest_signer(manifest: bytes, signature: bytes, keys: Sequence[PublicKey]) -> Signer:
    try:
        key_id = parse_detached_signature(signature).issuer_key_id
    except FleetgapError:
        key_id = None
    if keys:
        try:
            key = verify_bytes(manifest, signature, keys)
        except FleetgapError:
            return Signer(key_id)
        return Signer(key_id, key.fingerprint, tuple(key.user_ids))
    return Signer(key_id)
