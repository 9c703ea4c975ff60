"""Armored detached signatures: make them, and check them the way Go's x/crypto/openpgp does.

spec: agent-artifacts §6.3. The signature must be one armored `PGP SIGNATURE` block
holding a v4 signature of type binary or canonical text, with an issuer key-ID
subpacket; keys are tried one at a time, in order, never merged; the first key that
verifies wins. pysequoia makes signatures; checking them follows Go (`signature_math`):
from a running hash, so a file is read once for its `.sha512` and its signature.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pysequoia
from pysequoia.packet import PacketPile, Tag

from fleetgap.errors import FleetgapError
from fleetgap.pgp._sequoia import sequoia_message
from fleetgap.pgp.armor import SIGNATURE_BLOCK, ArmorError, first_armored_block
from fleetgap.pgp.keys import PublicKey, SecretKey
from fleetgap.pgp.packets import (
    SIG_BINARY,
    SIG_TEXT,
    PacketError,
    SignatureFields,
    parse_signature,
)
from fleetgap.pgp.signature_math import (
    DataDigest,
    Hash,
    SignatureMathError,
    shares_sha512,
    verify_data,
)

UNKNOWN_ENTITY = "openpgp: signature made by unknown entity"
_CHUNK = 1 << 20


class SignatureError(FleetgapError):
    """The signature is unusable or no key verifies it. `attempts` has one line per key."""

    def __init__(self, message: str, attempts: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.attempts = tuple(attempts)


def sign_file(path: Path, key: SecretKey, out: Path | None = None) -> Path:
    """Write an armored detached signature of `path` (default `<path>.asc`) atomically."""
    path = Path(path)
    target = Path(out) if out is not None else path.with_name(path.name + ".asc")
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    os.close(fd)
    try:
        pysequoia.sign_file(
            key.signer(), str(path), tmp, mode=pysequoia.SignatureMode.DETACHED, armor=True
        )
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
    except FleetgapError:
        Path(tmp).unlink(missing_ok=True)
        raise
    except Exception as exc:
        Path(tmp).unlink(missing_ok=True)
        raise SignatureError(f"cannot sign {path}: {sequoia_message(exc)}") from None
    return target


def sign_bytes(data: bytes, key: SecretKey) -> bytes:
    """An armored detached signature of `data`."""
    try:
        signature = pysequoia.sign(
            key.signer(), data, mode=pysequoia.SignatureMode.DETACHED, armor=True
        )
    except FleetgapError:
        raise
    except Exception as exc:
        raise SignatureError(f"cannot sign: {sequoia_message(exc)}") from None
    return signature if isinstance(signature, bytes) else str(signature).encode()


def verify_file(path: Path, signature: bytes, keys: Sequence[PublicKey]) -> PublicKey:
    """The first of `keys` that verifies `signature` over the file; raises SignatureError."""
    path = Path(path)
    if not path.is_file():
        raise SignatureError(f"cannot read {path}: no such file")
    return _verify(SignedData(path=path), signature, keys)


def verify_bytes(data: bytes, signature: bytes, keys: Sequence[PublicKey]) -> PublicKey:
    """The first of `keys` that verifies `signature` over `data`; raises SignatureError."""
    return _verify(SignedData(data=data), signature, keys)


@dataclass(frozen=True)
class ParsedSignature:
    sig: pysequoia.Sig
    issuer_key_id: str | None
    sig_type: int
    fields: SignatureFields  # of the first signature packet


def parse_detached_signature(signature: bytes | str) -> ParsedSignature:
    """The armored detached signature as Go reads it; raises SignatureError."""
    try:
        block = first_armored_block(signature)
    except ArmorError as exc:
        raise SignatureError(f"invalid signature: {exc}") from None
    if block.kind != SIGNATURE_BLOCK:
        raise SignatureError(f"invalid signature: expected '{SIGNATURE_BLOCK}', got: {block.kind}")
    raw = block.text.encode()
    try:
        sig = pysequoia.Sig.from_bytes(raw)
        packet = next(p for p in PacketPile.from_bytes(raw) if p.tag == Tag.Signature)
        fields = parse_signature(bytes(packet.body or b""))
    except StopIteration:
        raise SignatureError("invalid signature: no signature packet") from None
    except PacketError as exc:
        raise SignatureError(f"invalid signature: {exc}") from None
    except Exception as exc:
        raise SignatureError(f"invalid signature: {sequoia_message(exc)}") from None
    if fields.issuer_key_id is None:
        raise SignatureError("openpgp: invalid data: signature doesn't have an issuer")
    if fields.sig_type not in (SIG_BINARY, SIG_TEXT):
        raise SignatureError(
            f"openpgp: unsupported feature: unsupported signature type: {fields.sig_type}"
        )
    return ParsedSignature(sig, fields.issuer_key_id, fields.sig_type, fields)


def check_key(data: SignedData, parsed: ParsedSignature, key: PublicKey) -> str | None:
    """None if `key` verifies the signature, else the reason (Go's words where it has them)."""
    try:
        digest = DataDigest(parsed.fields)
    except SignatureMathError as exc:
        return str(exc)
    for chunk in data.chunks():
        digest.update(chunk)
    return check_digest(digest, parsed, key)


def check_digest(digest: DataDigest, parsed: ParsedSignature, key: PublicKey) -> str | None:
    """`check_key` for data already hashed into `digest` (which stays usable)."""
    component = key.signing_key(parsed.issuer_key_id or "")
    if component is None:
        return UNKNOWN_ENTITY
    if component.fields is None:
        return "openpgp: unsupported feature: key packet"
    if component.unusable is not None:
        return component.unusable
    try:
        verify_data(digest, parsed.fields, component.fields)
    except SignatureMathError as exc:
        return str(exc)
    return None


def verify_digest(digest: DataDigest, signature: ParsedSignature, keys: Sequence[PublicKey]):
    """The first of `keys` whose check of the hashed data passes; raises SignatureError."""
    return _first_key(lambda key: check_digest(digest, signature, key), signature, keys)


def file_digests(path: Path, parsed: ParsedSignature | None) -> tuple[Hash, DataDigest | None]:
    """One read of the file: its SHA-512 (the sidecar's) and the hash `parsed` covers."""
    sha512 = hashlib.sha512()
    other = DataDigest(parsed.fields) if parsed and not shares_sha512(parsed.fields) else None
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            sha512.update(chunk)
            if other is not None:
                other.update(chunk)
    if parsed is None:
        return sha512, None
    return sha512, other or DataDigest(parsed.fields, sha512.copy())


def signed_digest(parsed: ParsedSignature, sha512: Hash, path: Path) -> DataDigest:
    """The hash the signature covers, from the file's SHA-512 state when it is the same
    (Elastic signs binary SHA-512); otherwise the file is read once more."""
    if shares_sha512(parsed.fields):
        return DataDigest(parsed.fields, sha512.copy())
    digest = DataDigest(parsed.fields)
    for chunk in SignedData(path=path).chunks():
        digest.update(chunk)
    return digest


@dataclass(frozen=True)
class SignedData:
    """A file (streamed) or bytes to check a signature over."""

    path: Path | None = None
    data: bytes | None = None

    def chunks(self) -> Iterator[bytes]:
        if self.data is not None:
            yield self.data
            return
        assert self.path is not None
        with open(self.path, "rb") as handle:
            while chunk := handle.read(_CHUNK):
                yield chunk


def _verify(data: SignedData, signature: bytes, keys: Sequence[PublicKey]) -> PublicKey:
    if not keys:
        raise SignatureError("no PGP keys to verify with")
    parsed = parse_detached_signature(signature)
    try:
        digest = DataDigest(parsed.fields)
    except SignatureMathError as exc:
        raise SignatureError(str(exc)) from None
    for chunk in data.chunks():
        digest.update(chunk)
    return verify_digest(digest, parsed, keys)


def _first_key(check, parsed: ParsedSignature, keys: Sequence[PublicKey]) -> PublicKey:
    if not keys:
        raise SignatureError("no PGP keys to verify with")
    attempts: list[str] = []
    for index, key in enumerate(keys):
        problem = check(key)
        if problem is None:
            return key
        attempts.append(f"PGP[{index}] {key.fingerprint}: {problem}")
    raise SignatureError(
        f"signature by key ID {parsed.issuer_key_id} does not verify: {attempts[-1]}", attempts
    )
