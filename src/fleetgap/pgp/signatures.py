"""Armored detached signatures: make them, and check them the way Go's x/crypto/openpgp does.

spec: agent-artifacts §6.3. The signature must be one armored `PGP SIGNATURE` block
holding a v4 signature of type binary or canonical text, with an issuer key-ID
subpacket; keys are tried one at a time, in order, never merged; the first key that
verifies wins. pysequoia makes signatures; checking them follows Go (`packet_stream`,
`key_standing`, `signature_math`), from a running hash, so a file is read once for its
`.sha512` and its signature.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pysequoia

from fleetgap.errors import FleetgapError
from fleetgap.pgp._sequoia import sequoia_message
from fleetgap.pgp.armor import SIGNATURE_BLOCK, ArmorError, dearmor, first_armored_block
from fleetgap.pgp.keys import ComponentKey, PublicKey, SecretKey, utc_text
from fleetgap.pgp.packet_stream import TAG_SIGNATURE, RawPacket, read_packets
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


# What fleetgap accepts on its own signatures (bundle manifests, receipts), where no
# Elastic component sets the rules: SHA-256 or stronger, nothing expired.
STRONG_HASHES = {8: "SHA-256", 9: "SHA-384", 10: "SHA-512"}
_HASH_NAMES = {1: "MD5", 2: "SHA-1", 3: "RIPEMD-160", 11: "SHA-224", **STRONG_HASHES}


def verify_own_signature(
    data: bytes, signature: bytes, keys: Sequence[PublicKey], *, now: float | None = None
) -> PublicKey:
    """`verify_bytes` for a signature fleetgap made (bundle manifest, receipt): also refused
    when its hash is weaker than SHA-256, when it has expired, or when the key that made it
    has expired (Go's agent does not check expiry; fleetgap does, on its own signatures)."""
    moment = time.time() if now is None else now
    digests = SignedDigests(SignedData(data=data))
    parsed = parse_detached_signature(signature)

    def check(key: PublicKey) -> str | None:
        selected = select_signature(parsed, key)
        if isinstance(selected, str):
            return selected
        return _policy_problem(selected, moment) or check_digests(digests, parsed, key)

    return _first_key(check, parsed, keys)


def _policy_problem(selected: Selected, now: float) -> str | None:
    fields, component = selected.fields, selected.component
    if fields.hash_algo not in STRONG_HASHES:
        name = _HASH_NAMES.get(fields.hash_algo, f"hash {fields.hash_algo}")
        return f"a {name} signature is refused: SHA-256 or stronger only"
    if fields.sig_expires and (fields.created or 0) + fields.sig_expires <= now:
        return f"the signature expired at {utc_text((fields.created or 0) + fields.sig_expires)}"
    if component.expires is not None and component.expires <= now:
        return f"key {component.key_id} expired at {utc_text(component.expires)}"
    return None


@dataclass(frozen=True)
class ParsedSignature:
    """The signature packets of a detached signature, in order; an entry is the packet's
    fields, or why Go could not read it (it fails only if the check reaches it)."""

    candidates: tuple[SignatureFields | str, ...]

    @property
    def issuer_key_id(self) -> str | None:
        first = self.candidates[0]
        return None if isinstance(first, str) else first.issuer_key_id


def parse_detached_signature(signature: bytes | str) -> ParsedSignature:
    """The armored detached signature as Go reads it; raises SignatureError."""
    try:
        block = first_armored_block(signature)
    except ArmorError as exc:
        raise SignatureError(f"invalid signature: {exc}") from None
    if block.kind != SIGNATURE_BLOCK:
        raise SignatureError(f"invalid signature: expected '{SIGNATURE_BLOCK}', got: {block.kind}")
    try:
        packets = read_packets(dearmor(block))
    except (ArmorError, PacketError) as exc:
        raise SignatureError(f"invalid signature: {exc}") from None
    if not packets:
        raise SignatureError("invalid signature: no signature packet")
    candidates = tuple(_signature_fields(packet) for packet in packets)
    if isinstance(candidates[0], str):  # Go fails on it whatever the keys
        raise SignatureError(f"invalid signature: {candidates[0]}")
    return ParsedSignature(candidates)


def _signature_fields(packet: RawPacket) -> SignatureFields | str:
    """Go reads packets one by one and stops at the first that it cannot use."""
    if packet.tag != TAG_SIGNATURE:
        return "openpgp: invalid data: non signature packet found"
    try:
        return parse_signature(packet.body)
    except PacketError as exc:
        return str(exc)


@dataclass(frozen=True)
class Selected:
    """The signature packet Go checks against one key, and the key component it names."""

    fields: SignatureFields
    component: ComponentKey


def select_signature(parsed: ParsedSignature, key: PublicKey) -> Selected | str:
    """Go's CheckDetachedSignature: the first signature packet whose issuer is a key of this
    file that may sign; else the reason (known before the data is read)."""
    unusable: str | None = None
    for candidate in parsed.candidates:
        if isinstance(candidate, str):
            return f"invalid signature: {candidate}"
        if candidate.issuer_key_id is None:
            return "openpgp: invalid data: signature doesn't have an issuer"
        component = key.signing_key(candidate.issuer_key_id)
        if component is None:
            continue
        if component.unusable is not None or component.fields is None:
            unusable = unusable or component.unusable or "openpgp: unsupported feature: key"
            continue
        if candidate.sig_type not in (SIG_BINARY, SIG_TEXT):
            return f"openpgp: unsupported feature: unsupported signature type: {candidate.sig_type}"
        return Selected(candidate, component)
    return unusable or key.refusal or UNKNOWN_ENTITY


class SignedDigests:
    """The data's hash as each signature packet needs it (hash and text mode), each made at
    most once; the file's SHA-512 state, when known, serves binary SHA-512 signatures."""

    def __init__(self, data: SignedData, sha512: Hash | None = None) -> None:
        self.data = data
        self.sha512 = sha512
        self._made: dict[tuple[int, int], DataDigest] = {}

    def for_signature(self, fields: SignatureFields) -> DataDigest:
        if self.sha512 is not None and shares_sha512(fields):
            return DataDigest(fields, self.sha512.copy())
        key = (fields.hash_algo, fields.sig_type)
        if key not in self._made:
            self._made[key] = DataDigest(fields)
            self._feed([self._made[key]])
        return self._made[key]

    def read_once(self, signatures: Sequence[SignatureFields]) -> None:
        """One read of the data: its SHA-512 and the hashes `signatures` need."""
        self.start(signatures)
        for chunk in self.data.chunks():
            self.update(chunk)

    def start(self, signatures: Sequence[SignatureFields]) -> None:
        """Begin a read of data fed with `update` (a stream, e.g. a bundle member): its
        SHA-512 and the hashes `signatures` need."""
        self.sha512 = hashlib.sha512()
        self._made.update(
            ((f.hash_algo, f.sig_type), DataDigest(f)) for f in signatures if not shares_sha512(f)
        )
        self._streamed: list[Hash | DataDigest] = [self.sha512, *self._made.values()]

    def update(self, chunk: bytes) -> None:
        for digest in self._streamed:
            digest.update(chunk)

    def _feed(self, digests: Sequence[Hash | DataDigest]) -> None:
        for chunk in self.data.chunks():
            for digest in digests:
                digest.update(chunk)


def check_key(data: SignedData, parsed: ParsedSignature, key: PublicKey) -> str | None:
    """None if `key` verifies the signature, else the reason (Go's words where it has them)."""
    return check_digests(SignedDigests(data), parsed, key)


def check_digests(digests: SignedDigests, parsed: ParsedSignature, key: PublicKey) -> str | None:
    """`check_key` over data hashed (or to be hashed) by `digests`."""
    selected = select_signature(parsed, key)
    if isinstance(selected, str):
        return selected
    assert selected.component.fields is not None
    try:
        digest = digests.for_signature(selected.fields)
        verify_data(digest, selected.fields, selected.component.fields)
    except SignatureMathError as exc:
        return str(exc)
    return None


def verify_digests(
    digests: SignedDigests, parsed: ParsedSignature, keys: Sequence[PublicKey]
) -> PublicKey:
    """The first of `keys` that verifies the signature; raises SignatureError."""
    return _first_key(lambda key: check_digests(digests, parsed, key), parsed, keys)


def check_signers(parsed: ParsedSignature, keys: Sequence[PublicKey]) -> list[Selected]:
    """Before any data is read: the signature each key would check; SignatureError when no
    key can check any (unknown issuer, unusable key, unsupported signature)."""
    if not keys:
        raise SignatureError("no PGP keys to verify with")
    usable: list[Selected] = []
    attempts: list[str] = []
    for index, key in enumerate(keys):
        chosen = select_signature(parsed, key)
        if isinstance(chosen, Selected):
            usable.append(chosen)
        else:
            attempts.append(f"PGP[{index}] {key.fingerprint}: {chosen}")
    if not usable:
        raise _not_verified(parsed, attempts)
    return usable


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
    return verify_digests(SignedDigests(data), parse_detached_signature(signature), keys)


def _first_key(check, parsed: ParsedSignature, keys: Sequence[PublicKey]) -> PublicKey:
    if not keys:
        raise SignatureError("no PGP keys to verify with")
    attempts: list[str] = []
    for index, key in enumerate(keys):
        problem = check(key)
        if problem is None:
            return key
        attempts.append(f"PGP[{index}] {key.fingerprint}: {problem}")
    raise _not_verified(parsed, attempts)


def _not_verified(parsed: ParsedSignature, attempts: list[str]) -> SignatureError:
    return SignatureError(
        f"signature by key ID {parsed.issuer_key_id} does not verify: {attempts[-1]}", attempts
    )
