"""Find the first ASCII-armored block in a blob, the way Go's x/crypto/openpgp/armor does.

spec: agent-artifacts §6.3 — the agent reads only the first armored block of a key source
(it may hold several keys); anything after its END line is ignored.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass

from fleetgap.errors import FleetgapError

PUBLIC_KEY_BLOCK = "PGP PUBLIC KEY BLOCK"
PRIVATE_KEY_BLOCK = "PGP PRIVATE KEY BLOCK"
SIGNATURE_BLOCK = "PGP SIGNATURE"

_BEGIN = "-----BEGIN "
_END = "-----END "


class ArmorError(FleetgapError):
    """The blob holds no usable armored block."""


@dataclass(frozen=True)
class ArmoredBlock:
    kind: str  # e.g. "PGP PUBLIC KEY BLOCK"
    text: str  # from the BEGIN line through the END line, newline-terminated


def first_armored_block(data: bytes | str) -> ArmoredBlock:
    """The first `-----BEGIN X-----` … `-----END X-----` block; raises ArmorError."""
    text = data.decode("utf-8", "replace") if isinstance(data, bytes) else data
    lines = text.splitlines()
    for start, raw in enumerate(lines):
        line = raw.strip()
        # Go: a BEGIN line is any trimmed line longer than the two markers; the type is
        # what sits between "-----BEGIN " and the last five characters.
        if len(line) > len(_BEGIN) + 5 and line.startswith(_BEGIN):
            kind = line[len(_BEGIN) : -5]
            for end in range(start + 1, len(lines)):
                if lines[end].strip().startswith(_END):
                    block = [lines[start].strip(), *lines[start + 1 : end], lines[end].strip()]
                    return ArmoredBlock(kind, "\n".join(block) + "\n")
            raise ArmorError("armor: unexpected EOF (no END line)")
    raise ArmorError("no armored data found")


def count_armored_blocks(data: bytes | str) -> int:
    """How many BEGIN lines `data` holds, as Go would find them one block after another."""
    text = data.decode("utf-8", "replace") if isinstance(data, bytes) else data
    return sum(
        1
        for raw in text.splitlines()
        if len(line := raw.strip()) > len(_BEGIN) + 5 and line.startswith(_BEGIN)
    )


def dearmor(block: ArmoredBlock) -> bytes:
    """The block's binary content: headers skipped, base64 decoded, CRC-24 checked."""
    lines = [line.strip() for line in block.text.splitlines()[1:-1]]
    if "" in lines:  # armor headers ("Version: …") end at the first blank line
        headers, lines = lines[: lines.index("")], lines[lines.index("") + 1 :]
        if any(": " not in header for header in headers):
            # Go gives up such a block (and goes on to the next BEGIN line); Sequoia reads
            # these lines as data: no reader may see other bytes than the rest
            raise ArmorError("armor: a line before the blank line is not a header")
    checksum = next((line for line in lines if line.startswith("=") and len(line) == 5), None)
    body = "".join(line for line in lines if line and not line.startswith("="))
    try:
        data = base64.b64decode(body, validate=True)
        expected = base64.b64decode(checksum[1:], validate=True) if checksum else None
    except (binascii.Error, ValueError):
        raise ArmorError("armor: invalid base64 data") from None
    if expected is not None and _crc24(data).to_bytes(3, "big") != expected:
        raise ArmorError("armor: invalid data: armor checksum mismatch")
    return data


def _crc24(data: bytes) -> int:
    """RFC 4880 §6.1 CRC-24, a byte at a time from a table."""
    crc = 0xB704CE
    for byte in data:
        crc = ((crc << 8) & 0xFFFFFF) ^ _CRC24_TABLE[((crc >> 16) ^ byte) & 0xFF]
    return crc


def _crc24_table() -> tuple[int, ...]:
    table = []
    for index in range(256):
        crc = index << 16
        for _ in range(8):
            crc = (crc << 1) ^ (0x1864CFB if crc & 0x800000 else 0)
        table.append(crc & 0xFFFFFF)
    return tuple(table)


_CRC24_TABLE = _crc24_table()
