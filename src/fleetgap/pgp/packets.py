"""The few fields of v4 signature and key packets that pysequoia does not expose.

Go's x/crypto/openpgp (the agent) decides on these: a detached signature needs an
issuer key-ID subpacket (spec: agent-artifacts §6.3, "signature doesn't have an
issuer"), and its type must be binary (0x00) or canonical text (0x01). Subpackets are
read with Go's rules, so that a packet Go refuses is refused here too.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

SIG_BINARY = 0x00
SIG_TEXT = 0x01
_SUBPACKET_CREATED = 2
_SUBPACKET_SIGNATURE_EXPIRES = 3
_SIG_PRIMARY_KEY_BINDING = 0x19
_SUBPACKET_KEY_EXPIRES = 9
_SUBPACKET_ISSUER = 16
_SUBPACKET_PRIMARY_USER_ID = 25
_SUBPACKET_KEY_FLAGS = 27
_SUBPACKET_REVOCATION_REASON = 29
_SUBPACKET_EMBEDDED = 32
# the subpackets Go's x/crypto/openpgp reads; any other one marked critical is refused
_GO_KNOWN_SUBPACKETS = {2, 3, 9, 11, 16, 21, 22, 25, 27, 29, 30, 32}
# hashes Go parses (RIPEMD-160 parses, then fails if used: not linked into the agent)
_GO_HASHES = {1, 2, 3, 8, 9, 10, 11}
_RSA_ALGOS = {1, 2, 3}
_ECDH, _ECDSA = 18, 19
_KEY_MPI_COUNTS = {1: 2, 2: 2, 3: 2, 16: 3, 17: 4, 20: 3}  # RSA, ElGamal, DSA
_SIGNATURE_MPI_COUNTS = {1: 1, 3: 1, 17: 2, 19: 2}  # the signature algorithms Go verifies
NIST_CURVE_OIDS = {  # the only curves Go x/crypto/openpgp reads
    bytes.fromhex("2a8648ce3d030107"): "P-256",
    bytes.fromhex("2b81040022"): "P-384",
    bytes.fromhex("2b81040023"): "P-521",
}
_INVALID = "openpgp: invalid data"
_UNSUPPORTED = "openpgp: unsupported feature"


class PacketError(ValueError):
    """A packet body that does not have the v4 layout we read."""


@dataclass(frozen=True)
class SignatureFields:
    version: int
    sig_type: int
    pk_algo: int
    hash_algo: int
    hashed_part: bytes  # version .. end of hashed subpackets: what the trailer covers
    issuer_key_id: str | None  # upper hex, the last issuer subpacket (hashed or not)
    key_flags: int | None  # hashed area only, all key-flags subpackets OR-ed as in Go
    left16: bytes
    mpis: tuple[bytes, ...]
    created: int | None = None  # hashed area only, seconds since the epoch
    key_expires: int | None = None  # hashed; seconds after the key's creation, 0 = never
    embedded: bytes | None = None  # an embedded signature packet body (the back-signature)
    revocation_reason: bool = False  # a hashed reason-for-revocation subpacket is present
    primary_user_id: bool = False  # hashed "primary user ID" flag set
    sig_expires: int | None = None  # hashed; seconds after the signature's creation, 0 = never


@dataclass(frozen=True)
class KeyFields:
    version: int
    pk_algo: int
    mpis: tuple[bytes, ...]
    curve_oid: bytes | None = None  # ECDSA/ECDH/EdDSA keys: the curve, before the MPIs
    body: bytes = b""  # the whole packet body: what key signatures hash
    created: int = 0  # seconds since the epoch


def parse_signature(body: bytes) -> SignatureFields:
    """A v4 signature packet read as Go's packet.Signature reads it, or PacketError with
    Go's reason (a packet Go cannot read fails a detached signature and a whole key)."""
    if len(body) < 6 or body[0] != 4:
        raise PacketError(f"{_UNSUPPORTED}: signature packet version {body[:1].hex() or '?'}")
    if body[2] not in _SIGNATURE_MPI_COUNTS:
        raise PacketError(f"{_UNSUPPORTED}: public key algorithm {body[2]}")
    if body[3] not in _GO_HASHES:
        raise PacketError(f"{_UNSUPPORTED}: hash function {body[3]}")
    hashed_end = 6 + int.from_bytes(body[4:6], "big")
    unhashed_start = hashed_end + 2
    rest = unhashed_start + int.from_bytes(body[hashed_end:unhashed_start], "big")
    if unhashed_start > len(body) or rest + 2 > len(body):
        raise PacketError(f"{_INVALID}: signature packet truncated")
    reading = _Subpackets()
    for data, critical, hashed in (
        *((d, c, True) for d, c in _subpackets(body[6:hashed_end])),
        *((d, c, False) for d, c in _subpackets(body[unhashed_start:rest])),
    ):
        reading.add(data, critical, hashed)
    if reading.created is None:
        raise PacketError(f"{_INVALID}: no creation time in signature")
    return SignatureFields(
        version=4,
        sig_type=body[1],
        pk_algo=body[2],
        hash_algo=body[3],
        hashed_part=body[:hashed_end],
        issuer_key_id=reading.issuer,
        key_flags=reading.flags,
        left16=body[rest : rest + 2],
        mpis=_read_mpis(body, rest + 2, _SIGNATURE_MPI_COUNTS[body[2]])[0],
        created=reading.created,
        key_expires=reading.key_expires,
        embedded=reading.embedded,
        revocation_reason=reading.revocation_reason,
        primary_user_id=reading.primary_user_id,
        sig_expires=reading.sig_expires,
    )


def parse_signature_end(body: bytes) -> int:
    """Where Go's parser stops reading this v4 signature packet (after its last MPI)."""
    fields = parse_signature(body)
    unhashed = len(fields.hashed_part) + 2
    rest = unhashed + int.from_bytes(body[len(fields.hashed_part) : unhashed], "big")
    return _read_mpis(body, rest + 2, _SIGNATURE_MPI_COUNTS[body[2]])[1]


@dataclass
class _Subpackets:
    """Go's parseSignatureSubpacket: which subpackets count where, and which break the
    packet (spec: RFC 4880 §5.2.3.1; an unknown critical subpacket is unsupported)."""

    created: int | None = None
    issuer: str | None = None
    flags: int | None = None
    key_expires: int | None = None
    sig_expires: int | None = None
    embedded: bytes | None = None
    revocation_reason: bool = False
    primary_user_id: bool = False

    def add(self, data: bytes, critical: bool, hashed: bool) -> None:
        kind, value = data[0], data[1:]
        if kind == _SUBPACKET_CREATED:
            if not hashed:
                raise PacketError(f"{_INVALID}: signature creation time in non-hashed area")
            self.created = _four_bytes(value, "signature creation time")
        elif kind == _SUBPACKET_ISSUER:
            if len(value) != 8:
                raise PacketError(f"{_INVALID}: issuer subpacket with bad length")
            self.issuer = value.hex().upper()  # the last one counts, as in Go
        elif kind == _SUBPACKET_EMBEDDED:
            self._embedded(value)
        elif not hashed:
            _check_known(kind, critical)  # Go reads nothing else from the unhashed area
        elif kind == _SUBPACKET_KEY_FLAGS:
            if not value:
                raise PacketError(f"{_INVALID}: empty key flags subpacket")
            self.flags = (self.flags or 0) | value[0]
        elif kind == _SUBPACKET_KEY_EXPIRES:
            self.key_expires = _four_bytes(value, "key expiration")
        elif kind == _SUBPACKET_SIGNATURE_EXPIRES:
            self.sig_expires = _four_bytes(value, "expiration")
        elif kind == _SUBPACKET_REVOCATION_REASON:
            if not value:
                raise PacketError(f"{_INVALID}: empty revocation reason subpacket")
            self.revocation_reason = True
        elif kind == _SUBPACKET_PRIMARY_USER_ID:
            if len(value) != 1:
                raise PacketError(f"{_INVALID}: primary user id subpacket with bad length")
            self.primary_user_id = self.primary_user_id or value != b"\x00"
        else:
            _check_known(kind, critical)

    def _embedded(self, value: bytes) -> None:
        """Go parses an embedded signature wherever it is, and only a back-signature may be."""
        if self.embedded is not None:
            raise PacketError(f"{_INVALID}: Cannot have multiple embedded signatures")
        sig_type = parse_signature(value).sig_type
        if sig_type != _SIG_PRIMARY_KEY_BINDING:
            raise PacketError(f"{_INVALID}: cross-signature has unexpected type {sig_type}")
        self.embedded = value


def _check_known(kind: int, critical: bool) -> None:
    if critical and kind not in _GO_KNOWN_SUBPACKETS:
        raise PacketError(f"{_UNSUPPORTED}: unknown critical signature subpacket type {kind}")


def _four_bytes(value: bytes, what: str) -> int:
    if len(value) != 4:
        raise PacketError(f"{_INVALID}: {what} subpacket with bad length")
    return int.from_bytes(value, "big")


def parse_key(body: bytes) -> KeyFields:
    """A v4 public-key (or the public part of a secret-key) packet as Go reads it; a key Go
    cannot use raises PacketError with Go's reason."""
    if len(body) < 6:
        raise PacketError("unexpected EOF")
    if body[0] != 4:
        raise PacketError(f"{_UNSUPPORTED}: public key version {body[0]}")
    algo, created = body[5], int.from_bytes(body[1:5], "big")
    curve = None
    if algo in _KEY_MPI_COUNTS:
        mpis, end = _read_mpis(body, 6, _KEY_MPI_COUNTS[algo])
        if algo in _RSA_ALGOS and len(mpis[1]) > 3:
            raise PacketError(f"{_UNSUPPORTED}: large public exponent")
    elif algo in (_ECDH, _ECDSA):
        oid_end = 7 + _byte(body, 6)
        curve = bytes(_take(body, 7, oid_end - 7))
        if curve not in NIST_CURVE_OIDS:
            raise PacketError(f"{_UNSUPPORTED}: unsupported oid: {curve.hex()}")
        mpis, end = _read_mpis(body, oid_end, 1)
        if mpis[0][:1] != b"\x04":
            raise PacketError(f"{_UNSUPPORTED}: failed to parse EC point")
        if algo == _ECDH:  # the KDF parameters follow the point
            end += 1 + _byte(body, end)
            _take(body, end - 1, 1)
    else:
        raise PacketError(f"{_UNSUPPORTED}: public key type: {algo}")
    return KeyFields(4, algo, mpis, curve, body[:end], created)


def key_id_of(key_body: bytes) -> str:
    """The v4 key ID: the low 64 bits of the SHA-1 fingerprint of the public key, upper hex."""
    digest = hashlib.sha1(key_hash_prefix(key_body), usedforsecurity=False)
    return digest.hexdigest().upper()[-16:]


def key_hash_prefix(key_body: bytes) -> bytes:
    """A public key as fingerprints and key signatures hash it (RFC 4880 §12.2, §5.2.4)."""
    return b"\x99" + len(key_body).to_bytes(2, "big") + key_body


def _read_mpis(data: bytes, pos: int, count: int) -> tuple[tuple[bytes, ...], int]:
    """`count` MPIs (2-byte bit count, then the bytes) from `pos`; PacketError if short."""
    values: list[bytes] = []
    for _ in range(count):
        size = (int.from_bytes(_take(data, pos, 2), "big") + 7) // 8
        values.append(bytes(_take(data, pos + 2, size)))
        pos += 2 + size
    return tuple(values), pos


def _take(data: bytes, pos: int, size: int) -> bytes:
    if pos < 0 or pos + size > len(data):
        raise PacketError("unexpected EOF")
    return data[pos : pos + size]


def _byte(data: bytes, pos: int) -> int:
    return _take(data, pos, 1)[0]


def _subpackets(area: bytes) -> list[tuple[bytes, bool]]:
    """(type byte and data, critical) for each subpacket of a subpacket area."""
    found: list[tuple[bytes, bool]] = []
    pos = 0
    while pos < len(area):
        first = area[pos]
        if first < 192:
            length, pos = first, pos + 1
        elif first < 255:
            if pos + 2 > len(area):
                raise PacketError(f"{_INVALID}: subpacket truncated")
            length, pos = ((first - 192) << 8) + area[pos + 1] + 192, pos + 2
        else:
            if pos + 5 > len(area):
                raise PacketError(f"{_INVALID}: subpacket truncated")
            length, pos = int.from_bytes(area[pos + 1 : pos + 5], "big"), pos + 5
        if length == 0:
            raise PacketError(f"{_INVALID}: zero length signature subpacket")
        if pos + length > len(area):
            raise PacketError(f"{_INVALID}: subpacket truncated")
        found.append((bytes([area[pos] & 0x7F]) + area[pos + 1 : pos + length], area[pos] >= 0x80))
        pos += length
    return found
