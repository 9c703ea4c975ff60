"""The few fields of v4 signature and key packets that pysequoia does not expose.

Go's x/crypto/openpgp (the agent) decides on these: a detached signature needs an
issuer key-ID subpacket (spec: agent-artifacts §6.3, "signature doesn't have an
issuer"), and its type must be binary (0x00) or canonical text (0x01).
"""

from __future__ import annotations

from dataclasses import dataclass

SIG_BINARY = 0x00
SIG_TEXT = 0x01
_SUBPACKET_CREATED = 2
_SUBPACKET_KEY_EXPIRES = 9
_SUBPACKET_ISSUER = 16
_SUBPACKET_KEY_FLAGS = 27
_SUBPACKET_EMBEDDED = 32
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
    issuer_key_id: str | None  # upper hex, from an issuer subpacket (hashed or not)
    key_flags: int | None  # hashed area only
    left16: bytes
    mpis: tuple[bytes, ...]
    created: int | None = None  # hashed area only, seconds since the epoch
    key_expires: int | None = None  # hashed; seconds after the key's creation, 0 = never
    embedded: bytes | None = None  # an embedded signature packet body (the back-signature)


@dataclass(frozen=True)
class KeyFields:
    version: int
    pk_algo: int
    mpis: tuple[bytes, ...]
    curve_oid: bytes | None = None  # ECDSA/ECDH/EdDSA keys: the curve, before the MPIs
    body: bytes = b""  # the whole packet body: what key signatures hash
    created: int = 0  # seconds since the epoch


def parse_signature(body: bytes) -> SignatureFields:
    if len(body) < 6 or body[0] != 4:
        raise PacketError("not a v4 signature")
    hashed_len = int.from_bytes(body[4:6], "big")
    hashed_end = 6 + hashed_len
    unhashed_len = int.from_bytes(body[hashed_end : hashed_end + 2], "big")
    unhashed_start = hashed_end + 2
    rest = unhashed_start + unhashed_len
    if rest + 2 > len(body):
        raise PacketError("truncated signature packet")
    hashed = _subpackets(body[6:hashed_end])
    subpackets = [*hashed, *_subpackets(body[unhashed_start:rest])]
    issuer = next((data for kind, data in subpackets if kind == _SUBPACKET_ISSUER), None)
    flags = _first(hashed, _SUBPACKET_KEY_FLAGS)
    created = _first(hashed, _SUBPACKET_CREATED)
    expires = _first(hashed, _SUBPACKET_KEY_EXPIRES)
    return SignatureFields(
        version=4,
        sig_type=body[1],
        pk_algo=body[2],
        hash_algo=body[3],
        hashed_part=body[:hashed_end],
        issuer_key_id=issuer.hex().upper() if issuer and len(issuer) == 8 else None,
        key_flags=flags[0] if flags else None,
        left16=body[rest : rest + 2],
        mpis=_mpis(body[rest + 2 :]),
        created=int.from_bytes(created, "big") if created and len(created) == 4 else None,
        key_expires=int.from_bytes(expires, "big") if expires and len(expires) == 4 else None,
        embedded=next((data for kind, data in subpackets if kind == _SUBPACKET_EMBEDDED), None),
    )


def parse_key(body: bytes) -> KeyFields:
    if len(body) < 6 or body[0] != 4:
        raise PacketError("not a v4 key")
    algo = body[5]
    created = int.from_bytes(body[1:5], "big")
    if algo in _EC_ALGOS:
        end = 7 + body[6]
        return KeyFields(4, algo, _mpis(body[end:]), body[7:end], body, created)
    return KeyFields(4, algo, _mpis(body[6:]), None, body, created)


def _first(subpackets: list[tuple[int, bytes]], kind: int) -> bytes | None:
    return next((data for found, data in subpackets if found == kind), None)


def _subpackets(area: bytes) -> list[tuple[int, bytes]]:
    found: list[tuple[int, bytes]] = []
    pos = 0
    while pos < len(area):
        first = area[pos]
        if first < 192:
            length, pos = first, pos + 1
        elif first < 255:
            length, pos = ((first - 192) << 8) + area[pos + 1] + 192, pos + 2
        else:
            length, pos = int.from_bytes(area[pos + 1 : pos + 5], "big"), pos + 5
        if length == 0 or pos + length > len(area):
            raise PacketError("malformed subpacket")
        found.append((area[pos] & 0x7F, area[pos + 1 : pos + length]))
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
