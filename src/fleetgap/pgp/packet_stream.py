"""OpenPGP packet framing (RFC 4880 §4.2), read as Go's packet.Reader reads it.

Old- and new-format headers, partial body lengths; packet types Go does not know (marker,
trust, private/experimental tags) are skipped, as Go's reader skips them. Reading the
framing ourselves keeps hostile input from reaching a library call that may raise
anything: every problem is a PacketError.
"""

from __future__ import annotations

from dataclasses import dataclass

from fleetgap.pgp.packets import PacketError

TAG_SIGNATURE = 2
TAG_SECRET_KEY = 5
TAG_PUBLIC_KEY = 6
TAG_SECRET_SUBKEY = 7
TAG_USER_ID = 13
TAG_PUBLIC_SUBKEY = 14
TAG_USER_ATTRIBUTE = 17
# the packet types Go's packet.Read parses; any other is skipped by its reader
GO_KNOWN_TAGS = frozenset({1, 2, 3, 4, 5, 6, 7, 8, 9, 11, 13, 14, 17, 18})


@dataclass(frozen=True)
class RawPacket:
    tag: int
    body: bytes


def read_packets(data: bytes) -> list[RawPacket]:
    """Every packet Go would hand on, in order; PacketError on broken framing."""
    packets: list[RawPacket] = []
    pos = 0
    while pos < len(data):
        tag, body, pos = _read_one(data, pos)
        if tag in GO_KNOWN_TAGS:
            packets.append(RawPacket(tag, body))
    return packets


def _read_one(data: bytes, pos: int) -> tuple[int, bytes, int]:
    first = data[pos]
    if not first & 0x80:
        raise PacketError("openpgp: invalid data: tag byte does not have MSB set")
    pos += 1
    if first & 0x40:  # new format
        tag = first & 0x3F
        body = bytearray()
        while True:
            length, partial, pos = _new_length(data, pos)
            body += _take(data, pos, length)
            pos += length
            if not partial:
                return tag, bytes(body), pos
    tag = (first >> 2) & 0x0F
    kind = first & 0x03
    if kind == 3:  # indeterminate: to the end of the data
        return tag, data[pos:], len(data)
    size = (1, 2, 4)[kind]
    length = int.from_bytes(_take(data, pos, size), "big")
    pos += size
    return tag, _take(data, pos, length), pos + length


def _new_length(data: bytes, pos: int) -> tuple[int, bool, int]:
    first = _take(data, pos, 1)[0]
    if first < 192:
        return first, False, pos + 1
    if first < 224:
        second = _take(data, pos + 1, 1)[0]
        return ((first - 192) << 8) + second + 192, False, pos + 2
    if first < 255:
        return 1 << (first & 0x1F), True, pos + 1
    return int.from_bytes(_take(data, pos + 1, 4), "big"), False, pos + 5


def _take(data: bytes, pos: int, size: int) -> bytes:
    if pos + size > len(data):
        raise PacketError("unexpected EOF")
    return data[pos : pos + size]
