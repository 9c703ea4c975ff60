"""RSA signature check for keys whose self-signatures use SHA-1 (Elastic's own key).

Why this exists: pysequoia applies Sequoia's StandardPolicy, which since 2023 rejects
SHA-1 *self-signatures*, so Elastic's 2013 signing key (46095ACC…, SHA-1 binding
signatures, see compat/elastic-agent/README.txt) is unusable there and every real
Elastic `.asc` would fail. Go's x/crypto/openpgp — what the agent runs — accepts that
key, so fleetgap must too. pysequoia offers no policy switch, so for such keys we do
what Go does for the data signature: hash the data plus the signature's hashed part
and trailer (RFC 4880 §5.2.4), compare the 16-bit hash tag, and check the RSA
PKCS#1 v1.5 signature with `cryptography`. Only RSA keys and binary signatures are
handled; anything else is refused.
"""

from __future__ import annotations

from collections.abc import Iterable

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa, utils

from fleetgap.pgp.packets import SIG_BINARY, KeyFields, SignatureFields

_RSA_ALGOS = {1, 3}  # RSA encrypt-or-sign, RSA sign-only
_HASHES = {
    1: hashes.MD5,
    2: hashes.SHA1,
    8: hashes.SHA256,
    9: hashes.SHA384,
    10: hashes.SHA512,
    11: hashes.SHA224,
}


class LegacyVerifyError(ValueError):
    """The signature does not verify (message in Go's words where it has them)."""


def verify_rsa(chunks: Iterable[bytes], sig: SignatureFields, key: KeyFields) -> None:
    """Raise LegacyVerifyError unless `sig` is `key`'s valid signature over the data chunks."""
    if key.pk_algo not in _RSA_ALGOS or sig.pk_algo not in _RSA_ALGOS:
        raise LegacyVerifyError("openpgp: unsupported feature: only RSA keys with SHA-1 self-sigs")
    hash_cls = _HASHES.get(sig.hash_algo)
    if hash_cls is None:
        raise LegacyVerifyError(f"openpgp: unsupported feature: hash function {sig.hash_algo}")
    if sig.sig_type != SIG_BINARY:  # Elastic signs binary; text mode is not needed here
        raise LegacyVerifyError(f"openpgp: unsupported feature: signature type {sig.sig_type}")
    digest = hashes.Hash(hash_cls())
    for chunk in chunks:
        digest.update(chunk)
    digest.update(sig.hashed_part)
    digest.update(b"\x04\xff" + len(sig.hashed_part).to_bytes(4, "big"))
    value = digest.finalize()
    if value[:2] != sig.left16:
        raise LegacyVerifyError("openpgp: invalid signature: hash tag doesn't match")
    if len(key.mpis) < 2 or not sig.mpis:
        raise LegacyVerifyError("openpgp: invalid data: malformed RSA key or signature")
    modulus, exponent = (int.from_bytes(m, "big") for m in key.mpis[:2])
    public = rsa.RSAPublicNumbers(exponent, modulus).public_key()
    size = (public.key_size + 7) // 8
    signature = sig.mpis[0].rjust(size, b"\x00")
    try:
        public.verify(signature, value, padding.PKCS1v15(), utils.Prehashed(hash_cls()))
    except InvalidSignature:
        raise LegacyVerifyError("openpgp: invalid signature: RSA verification failure") from None
