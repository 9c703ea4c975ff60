"""Protect a secret key with a passphrase, as gpg and Sequoia do (spec: RFC 4880 §3.7.1.3,
§5.5.3): each secret key packet's material encrypted with AES-256 in CFB mode, SHA-1 check
(S2K usage 254), the key derived from the passphrase by iterated and salted SHA-256.

pysequoia unlocks such keys (`Tsk.signer(password)`) but cannot write them; this writes
them, and `SecretKey.parse` then unlocks the result with the passphrase before it is used,
so a key that this module got wrong is never written.
"""

from __future__ import annotations

import hashlib
import os

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms

try:  # cryptography ≥ 47 keeps CFB among the "decrepit" modes; it is OpenPGP's
    from cryptography.hazmat.decrepit.ciphers.modes import CFB
except ImportError:  # pragma: no cover - older cryptography
    from cryptography.hazmat.primitives.ciphers.modes import CFB

from fleetgap.errors import FleetgapError
from fleetgap.pgp.packet_stream import TAG_SECRET_KEY, TAG_SECRET_SUBKEY, read_packets

_USAGE_SHA1_CHECKED = 254
_AES256 = 9
_S2K_ITERATED_SALTED = 3
_SHA256 = 8
_COUNT_OCTET = 0xFF  # 65,011,712 octets hashed: RFC 4880's most, about 0.1 s per unlock
# public-key algorithm -> how many MPIs its public part holds (RSA, RSA-E, RSA-S, DSA, Elgamal)
_PUBLIC_MPIS = {1: 2, 2: 2, 3: 2, 17: 4, 16: 3}


def protect_secret_key(data: bytes, passphrase: str) -> bytes:
    """The binary transferable secret key `data` with every secret key packet encrypted."""
    if not passphrase:
        raise FleetgapError("an empty passphrase protects nothing")
    secret = passphrase.encode("utf-8")
    out = []
    for packet in read_packets(data):
        body = packet.body
        if packet.tag in (TAG_SECRET_KEY, TAG_SECRET_SUBKEY):
            body = _protect_packet(body, secret)
        out.append(_header(packet.tag, len(body)) + body)
    return b"".join(out)


def _protect_packet(body: bytes, passphrase: bytes) -> bytes:
    if body[0] != 4 or body[5] not in _PUBLIC_MPIS:
        raise FleetgapError("only v4 RSA, DSA and Elgamal keys can be protected here")
    position = 6
    for _ in range(_PUBLIC_MPIS[body[5]]):
        position += 2 + (int.from_bytes(body[position : position + 2], "big") + 7) // 8
    if body[position] != 0:
        raise FleetgapError("the key is already protected")
    material = body[position + 1 : -2]  # the secret MPIs, without their 2-octet checksum
    salt, iv = os.urandom(8), os.urandom(16)
    key = _s2k(passphrase, salt, _COUNT_OCTET)
    encryptor = Cipher(algorithms.AES(key), CFB(iv)).encryptor()
    encrypted = encryptor.update(material + hashlib.sha1(material).digest()) + encryptor.finalize()
    s2k = bytes([_USAGE_SHA1_CHECKED, _AES256, _S2K_ITERATED_SALTED, _SHA256])
    return body[:position] + s2k + salt + bytes([_COUNT_OCTET]) + iv + encrypted


def _s2k(passphrase: bytes, salt: bytes, count_octet: int) -> bytes:
    """Iterated and salted S2K: SHA-256 over salt+passphrase repeated to `count` octets."""
    count = (16 + (count_octet & 15)) << ((count_octet >> 4) + 6)
    unit = salt + passphrase
    count = max(count, len(unit))
    block = unit * max(1, (1 << 16) // len(unit))
    digest = hashlib.sha256()
    while count >= len(block):
        digest.update(block)
        count -= len(block)
    digest.update((unit * (count // len(unit) + 1))[:count])
    return digest.digest()


def _header(tag: int, length: int) -> bytes:
    """A new-format packet header (RFC 4880 §4.2.2)."""
    if length < 192:
        size = bytes([length])
    elif length < 8384:
        size = bytes([((length - 192) >> 8) + 192, (length - 192) & 0xFF])
    else:
        size = b"\xff" + length.to_bytes(4, "big")
    return bytes([0xC0 | tag]) + size
