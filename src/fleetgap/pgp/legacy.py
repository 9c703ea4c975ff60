"""Signature check for keys whose self-signatures use SHA-1 (Elastic's own key).

Why this exists: pysequoia applies Sequoia's StandardPolicy, which since 2023 rejects
SHA-1 *self-signatures*, so Elastic's 2013 signing key (46095ACC…, SHA-1 binding
signatures, see compat/elastic-agent/README.txt) is unusable there and every real
Elastic `.asc` would fail. Go's x/crypto/openpgp — what the agent runs — accepts that
key, so fleetgap must too. pysequoia offers no policy switch, so for such keys we do
what Go does for the data signature: hash the data plus the signature's hashed part
and trailer (RFC 4880 §5.2.4), compare the 16-bit hash tag, and check the RSA
(PKCS#1 v1.5), DSA or ECDSA (NIST curves) signature with `cryptography` — the
algorithms Go supports. Only binary signatures are handled; anything else is refused.
"""

from __future__ import annotations

from collections.abc import Iterable

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import dsa, ec, padding, rsa, utils

from fleetgap.pgp.packets import SIG_BINARY, KeyFields, SignatureFields

_RSA = {1, 3}  # RSA encrypt-or-sign, RSA sign-only
_DSA = 17
_ECDSA = 19
_CURVES = {  # the NIST curves, the only ones Go x/crypto/openpgp reads
    bytes.fromhex("2a8648ce3d030107"): ec.SECP256R1(),
    bytes.fromhex("2b81040022"): ec.SECP384R1(),
    bytes.fromhex("2b81040023"): ec.SECP521R1(),
}
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


def verify_legacy(chunks: Iterable[bytes], sig: SignatureFields, key: KeyFields) -> None:
    """Raise LegacyVerifyError unless `sig` is `key`'s valid signature over the data chunks."""
    if sig.pk_algo != key.pk_algo and not (sig.pk_algo in _RSA and key.pk_algo in _RSA):
        raise LegacyVerifyError("openpgp: invalid signature: public key and signature type differ")
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
    prehashed = utils.Prehashed(hash_cls())
    try:
        if key.pk_algo in _RSA:
            _verify_rsa(key, sig, value, prehashed)
        elif key.pk_algo == _DSA:
            p, q, g, y = (_int(m) for m in key.mpis[:4])
            public = dsa.DSAPublicNumbers(y, dsa.DSAParameterNumbers(p, q, g)).public_key()
            public.verify(_dss(sig), value, prehashed)
        elif key.pk_algo == _ECDSA and key.curve_oid in _CURVES:
            curve = _CURVES[key.curve_oid]
            public = ec.EllipticCurvePublicKey.from_encoded_point(curve, key.mpis[0])
            public.verify(_dss(sig), value, ec.ECDSA(prehashed))
        else:
            raise LegacyVerifyError(f"openpgp: unsupported feature: public key type {key.pk_algo}")
    except InvalidSignature:
        raise LegacyVerifyError("openpgp: invalid signature: verification failure") from None
    except (ValueError, IndexError) as exc:
        raise LegacyVerifyError(f"openpgp: invalid data: {exc}") from None


def _verify_rsa(key: KeyFields, sig: SignatureFields, value: bytes, prehashed) -> None:
    modulus, exponent = (_int(m) for m in key.mpis[:2])
    public = rsa.RSAPublicNumbers(exponent, modulus).public_key()
    signature = sig.mpis[0].rjust((public.key_size + 7) // 8, b"\x00")
    public.verify(signature, value, padding.PKCS1v15(), prehashed)


def _dss(sig: SignatureFields) -> bytes:
    r, s = (_int(m) for m in sig.mpis[:2])
    return utils.encode_dss_signature(r, s)


def _int(mpi: bytes) -> int:
    return int.from_bytes(mpi, "big")
