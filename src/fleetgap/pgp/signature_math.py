"""v4 signature checks as Go's x/crypto/openpgp (the agent) makes them, from a running hash.

Why not pysequoia: Sequoia cannot verify from a digest, and the mirror hashes every byte
once while it downloads (the same SHA-512 state serves the `.sha512` sidecar and the
signature); its policy also rejects SHA-1 self-signatures, so Elastic's 2013 key
(46095ACC…) would be unusable, while Go accepts it. So, as Go does: hash the signed data
plus the signature's hashed part and trailer (RFC 4880 §5.2.4), compare the 16-bit hash
tag, and check RSA (PKCS#1 v1.5), DSA or ECDSA on the NIST curves — the algorithms Go
reads — with `cryptography`. Key signatures (bindings, back-signatures, revocations,
user-ID certifications) hash the key packets first (§5.2.4 again); `keys.py` uses them.
"""

from __future__ import annotations

import hashlib
import re
from typing import Protocol

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import dsa, ec, padding, rsa, utils

from fleetgap.errors import FleetgapError
from fleetgap.pgp.packets import SIG_BINARY, SIG_TEXT, KeyFields, SignatureFields, key_hash_prefix

_RSA = {1, 3}  # RSA encrypt-or-sign, RSA sign-only
_DSA = 17
_ECDSA = 19
_CURVES = {  # the NIST curves, the only ones Go x/crypto/openpgp reads
    bytes.fromhex("2a8648ce3d030107"): ec.SECP256R1(),
    bytes.fromhex("2b81040022"): ec.SECP384R1(),
    bytes.fromhex("2b81040023"): ec.SECP521R1(),
}
_HASHES = {  # OpenPGP hash id -> hashlib name, cryptography algorithm
    1: ("md5", hashes.MD5),
    2: ("sha1", hashes.SHA1),
    8: ("sha256", hashes.SHA256),
    9: ("sha384", hashes.SHA384),
    10: ("sha512", hashes.SHA512),
    11: ("sha224", hashes.SHA224),
}
SHA512 = 10
_CR_OR_LF = re.compile(rb"[\r\n]")


class SignatureMathError(FleetgapError):
    """The signature does not verify (message in Go's words where it has them)."""


class Hash(Protocol):
    def update(self, data: bytes, /) -> None: ...

    def copy(self) -> Hash: ...

    def digest(self) -> bytes: ...


class DataDigest:
    """The running hash of the data a detached signature covers.

    Binary signatures hash the bytes as they are; canonical-text signatures hash them with
    every lone LF written as CRLF, as Go's canonicalTextHash does.
    """

    def __init__(self, sig: SignatureFields, state: Hash | None = None) -> None:
        if sig.sig_type not in (SIG_BINARY, SIG_TEXT):
            raise SignatureMathError(
                f"openpgp: unsupported feature: unsupported signature type: {sig.sig_type}"
            )
        self.hash_algo = sig.hash_algo
        self.text = sig.sig_type == SIG_TEXT
        self.state: Hash = state if state is not None else new_hash(sig.hash_algo)
        self._after_cr = False

    def update(self, chunk: bytes) -> None:
        if not self.text:
            self.state.update(chunk)
            return
        # Go's state machine: a CR makes the next byte pass unexamined, whatever it is.
        skipped = 0 if self._after_cr else -1
        start = 0
        for match in _CR_OR_LF.finditer(chunk):
            index = match.start()
            if index == skipped:
                continue
            if chunk[index] == 0x0D:
                skipped = index + 1
            else:
                self.state.update(chunk[start:index])
                self.state.update(b"\r\n")
                start = index + 1
        self.state.update(chunk[start:])
        self._after_cr = skipped == len(chunk) if chunk else self._after_cr


def shares_sha512(sig: SignatureFields) -> bool:
    """True when the signature's data hash is the plain SHA-512 of the file (the sidecar's)."""
    return sig.sig_type == SIG_BINARY and sig.hash_algo == SHA512


def new_hash(hash_algo: int) -> Hash:
    entry = _HASHES.get(hash_algo)
    if entry is None:
        raise SignatureMathError(f"openpgp: unsupported feature: hash function {hash_algo}")
    return hashlib.new(entry[0])


def verify_data(digest: DataDigest, sig: SignatureFields, key: KeyFields) -> None:
    """Raise SignatureMathError unless `sig` is `key`'s signature over the hashed data.

    `digest` is not consumed: the caller's state stays usable.
    """
    if digest.hash_algo != sig.hash_algo:
        raise SignatureMathError("openpgp: internal error: data hashed with another algorithm")
    _verify(digest.state.copy(), sig, key)


def verify_key_signature(
    sig: SignatureFields, signer: KeyFields, primary: KeyFields, subkey: KeyFields | None = None
) -> None:
    """A signature over the primary key (and the subkey, for bindings and back-signatures)."""
    state = new_hash(sig.hash_algo)
    state.update(key_hash_prefix(primary.body))
    if subkey is not None:
        state.update(key_hash_prefix(subkey.body))
    _verify(state, sig, signer)


def verify_user_id_signature(sig: SignatureFields, primary: KeyFields, user_id: bytes) -> None:
    """A self-signature over the primary key and one user ID."""
    state = new_hash(sig.hash_algo)
    state.update(key_hash_prefix(primary.body))
    state.update(b"\xb4" + len(user_id).to_bytes(4, "big") + user_id)
    _verify(state, sig, primary)


def _verify(state: Hash, sig: SignatureFields, key: KeyFields) -> None:
    if sig.pk_algo != key.pk_algo:
        raise SignatureMathError(
            "openpgp: invalid argument: public key and signature use different algorithms"
        )
    entry = _HASHES.get(sig.hash_algo)
    if entry is None:
        raise SignatureMathError(f"openpgp: unsupported feature: hash function {sig.hash_algo}")
    state.update(sig.hashed_part)
    state.update(b"\x04\xff" + len(sig.hashed_part).to_bytes(4, "big"))
    value = state.digest()
    if value[:2] != sig.left16:
        raise SignatureMathError("openpgp: invalid signature: hash tag doesn't match")
    prehashed = utils.Prehashed(entry[1]())
    try:
        if key.pk_algo in _RSA:
            modulus, exponent = (_int(m) for m in key.mpis[:2])
            public = rsa.RSAPublicNumbers(exponent, modulus).public_key()
            signature = sig.mpis[0].rjust((public.key_size + 7) // 8, b"\x00")
            public.verify(signature, value, padding.PKCS1v15(), prehashed)
        elif key.pk_algo == _DSA:
            p, q, g, y = (_int(m) for m in key.mpis[:4])
            dsa_key = dsa.DSAPublicNumbers(y, dsa.DSAParameterNumbers(p, q, g)).public_key()
            dsa_key.verify(_dss(sig), value, prehashed)
        elif key.pk_algo == _ECDSA and key.curve_oid in _CURVES:
            curve = _CURVES[key.curve_oid]
            ec_key = ec.EllipticCurvePublicKey.from_encoded_point(curve, key.mpis[0])
            ec_key.verify(_dss(sig), value, ec.ECDSA(prehashed))
        else:
            raise SignatureMathError(f"openpgp: unsupported feature: public key type {key.pk_algo}")
    except InvalidSignature:
        raise SignatureMathError("openpgp: invalid signature: verification failure") from None
    except (ValueError, IndexError, TypeError) as exc:
        if isinstance(exc, SignatureMathError):
            raise
        raise SignatureMathError(f"openpgp: invalid data: {exc}") from None


def _dss(sig: SignatureFields) -> bytes:
    r, s = (_int(m) for m in sig.mpis[:2])
    return utils.encode_dss_signature(r, s)


def _int(mpi: bytes) -> int:
    return int.from_bytes(mpi, "big")
