"""The few fields of v4 signature and key packets that pysequoia does not expose.

Go's x/crypto/openpgp (the agent) decides on these: a detached signature needs an
issuer key-ID subpacket (spec: agent-artifacts §6.3, "signature doesn't have an
issuer"), and its type must be binary (0x00) or canonical text (0x01). Subpackets are
read with Go's rules, so that a packet Go refuses is refused here too.
"""

from __future__ import annotations

from dataclasses import dataclass

SIG_BINARY = 0x00
SIG_TEXT = 0x01
_SUBPACKET_CREATED = 2
_SUBPACKET_KEY_EXPIRES = 9
_SUBPACKET_ISSUER = 16
_SUBPACKET_PRIMARY_USER_ID = 25
_SUBPACKET_KEY_FLAGS = 27
_SUBPACKET_REVOCATION_REASON = 29
_SUBPACKET_EMBEDDED = 32
# the subpackets Go's x/crypto/openpgp reads; any other one marked critical is refused
_GO_KNOWN_SUBPACKETS = {2, 3, 9, 11, 16, 21, 22, 25, 27, 29, 30, 32}
_GO_HASHES = {1, 2, 8, 9, 10, 11}  # MD5, SHA-1, SHA-256/384/512/224 (RIPEMD-160 not linked)
_INVALID = "openpgp: invalid data"
_UNSUPPORTED = "openpgp: unsupported feature"
_EC_ALGOS = {18, 19, 22}  # ECDH, ECDSA, EdDSA


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
        mpis=_mpis(body[rest + 2 :]),
        created=reading.created,
        key_expires=reading.key_expires,
        embedded=reading.embedded,
        revocation_reason=reading.revocation_reason,
        primary_user_id=reading.primary_user_id,
    )


@dataclass
class _Subpackets:
    """Go's parseSignatureSubpacket: which subpackets count where, and which break the
    packet (spec: RFC 4880 §5.2.3.1; an unknown critical subpacket is unsupported)."""

    created: int | None = None
    issuer: str | None = None
    flags: int | None = None
    key_expires: int | None = None
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
        elif kind == _SUBPACKET_KEY_FLAGS:
            if not value:
                raise PacketError(f"{_INVALID}: empty key flags subpacket")
            if hashed:
                self.flags = (self.flags or 0) | value[0]
        elif kind == _SUBPACKET_KEY_EXPIRES:
            seconds = _four_bytes(value, "key expiration time")
            if hashed:
                self.key_expires = seconds
        elif kind == _SUBPACKET_EMBEDDED:
            if self.embedded is not None:
                raise PacketError(f"{_INVALID}: Cannot have multiple embedded signatures")
            self.embedded = value
        elif kind == _SUBPACKET_REVOCATION_REASON:
            self.revocation_reason = self.revocation_reason or hashed
        elif kind == _SUBPACKET_PRIMARY_USER_ID:
            self.primary_user_id = self.primary_user_id or (hashed and value[:1] != b"\x00")
        elif kind not in _GO_KNOWN_SUBPACKETS and critical:
            raise PacketError(f"{_UNSUPPORTED}: unknown critical signature subpacket type {kind}")


def _four_bytes(value: bytes, what: str) -> int:
    if len(value) != 4:
        raise PacketError(f"{_INVALID}: {what} not four bytes")
    return int.from_bytes(value, "big")


def parse_key(body: bytes) -> KeyFields:
    if len(body) < 6 or body[0] != 4:
        raise PacketError("not a v4 key")
    algo = body[5]
    created = int.from_bytes(body[1:5], "big")
    if algo in _EC_ALGOS:
        if len(body) < 7 or len(body) < 7 + body[6]:
            raise PacketError("truncated key packet")
        end = 7 + body[6]
        return KeyFields(4, algo, _mpis(body[end:]), body[7:end], body, created)
    return KeyFields(4, algo, _mpis(body[6:]), None, body, created)


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


def _mpis(data: bytes) -> tuple[bytes, ...]:
    """Consecutive MPIs (2-byte bit count, then the bytes) until the data runs out."""
    values: list[bytes] = []
    pos = 0
    while pos + 2 <= len(data):
        size = (int.from_bytes(data[pos : pos + 2], "big") + 7) // 8
        values.append(data[pos + 2 : pos + 2 + size])
        pos += 2 + size
    return tuple(values)
