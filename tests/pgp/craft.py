"""A test-only OpenPGP v4 writer (RFC 4880) with control over every packet.

It makes keys and signatures that ordinary tools refuse to make: bindings by the wrong key,
signing subkeys without a back-signature, corrupted signatures, SHA-1 self-signatures.
Public keys and signatures only; the secret keys stay in `cryptography` objects.
"""

from __future__ import annotations

import base64
import hashlib
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa, utils

KEY_CREATED = 1_700_000_000

# packet tags (RFC 4880 §4.3)
TAG_SIGNATURE = 2
TAG_PUBLIC_KEY = 6
TAG_USER_ID = 13
TAG_PUBLIC_SUBKEY = 14

# signature types (RFC 4880 §5.2.1)
SIG_BINARY = 0x00
SIG_TEXT = 0x01
SIG_POSITIVE_CERT = 0x13
SIG_SUBKEY_BINDING = 0x18
SIG_PRIMARY_KEY_BINDING = 0x19
SIG_KEY_REVOCATION = 0x20
SIG_SUBKEY_REVOCATION = 0x28

# subpacket types (RFC 4880 §5.2.3.1)
SP_CREATED = 2
SP_SIGNATURE_EXPIRES = 3
SP_KEY_EXPIRES = 9
SP_ISSUER = 16
SP_PRIMARY_UID = 25
SP_KEY_FLAGS = 27
SP_REVOCATION_REASON = 29
SP_EMBEDDED_SIGNATURE = 32
SP_ISSUER_FINGERPRINT = 33

# key flags (RFC 4880 §5.2.3.21)
CERTIFY = 0x01
SIGN = 0x02
ENCRYPT = 0x04 | 0x08

# hash algorithm id -> (hashlib name, cryptography hash class) (RFC 4880 §9.4)
HASHES: dict[int, tuple[str, type[hashes.HashAlgorithm]]] = {
    1: ("md5", hashes.MD5),
    2: ("sha1", hashes.SHA1),
    8: ("sha256", hashes.SHA256),
    9: ("sha384", hashes.SHA384),
    10: ("sha512", hashes.SHA512),
    11: ("sha224", hashes.SHA224),
}

P256_OID = bytes.fromhex("2a8648ce3d030107")

Subpacket = tuple[int, bytes]


def mpi(value: int | bytes) -> bytes:
    """A multiprecision integer: 2-byte bit count, then the big-endian value (§3.2)."""
    if isinstance(value, bytes):
        value = int.from_bytes(value, "big")
    bits = value.bit_length()
    return bits.to_bytes(2, "big") + value.to_bytes((bits + 7) // 8, "big")


@dataclass
class Key:
    """A v4 signing key; subclasses supply the algorithm and the math."""

    created: int = field(default=KEY_CREATED, kw_only=True)

    algo = 0

    def public_material(self) -> bytes:
        raise NotImplementedError

    def sign_digest(self, digest: bytes, hash_algo: int) -> bytes:
        """The signature MPIs over an already computed digest."""
        raise NotImplementedError

    @property
    def packet_body(self) -> bytes:
        """The public-key packet body (§5.5.2): version 4, time, algorithm, key material."""
        head = bytes([4]) + self.created.to_bytes(4, "big") + bytes([self.algo])
        return head + self.public_material()

    @property
    def fingerprint(self) -> str:
        """Upper-case hex SHA-1 over 0x99, the 2-byte body length and the body (§12.2)."""
        return hashlib.sha1(key_hash_prefix(self)).hexdigest().upper()

    @property
    def key_id(self) -> str:
        return self.fingerprint[-16:]


@dataclass
class RsaKey(Key):
    """An RSA key (algorithm 1)."""

    private: rsa.RSAPrivateKey

    algo = 1

    @classmethod
    def generate(cls, bits: int = 2048, created: int = KEY_CREATED) -> RsaKey:
        return cls(rsa.generate_private_key(65537, bits), created=created)

    def public_material(self) -> bytes:
        numbers = self.private.public_key().public_numbers()
        return mpi(numbers.n) + mpi(numbers.e)

    def sign_digest(self, digest: bytes, hash_algo: int) -> bytes:
        prehashed = utils.Prehashed(HASHES[hash_algo][1]())
        return mpi(self.private.sign(digest, padding.PKCS1v15(), prehashed))


@dataclass
class EcdsaKey(Key):
    """An ECDSA key on NIST P-256 (algorithm 19, RFC 6637)."""

    private: ec.EllipticCurvePrivateKey

    algo = 19

    @classmethod
    def generate(cls, created: int = KEY_CREATED) -> EcdsaKey:
        return cls(ec.generate_private_key(ec.SECP256R1()), created=created)

    def public_material(self) -> bytes:
        point = self.private.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
        return bytes([len(P256_OID)]) + P256_OID + mpi(point)

    def sign_digest(self, digest: bytes, hash_algo: int) -> bytes:
        prehashed = utils.Prehashed(HASHES[hash_algo][1]())
        r, s = utils.decode_dss_signature(self.private.sign(digest, ec.ECDSA(prehashed)))
        return mpi(r) + mpi(s)


# --- framing ---------------------------------------------------------------------------


def packet(tag: int, body: bytes, length_form: int | None = None) -> bytes:
    """A new-format packet (§4.2.2); length_form 1, 2 or 5 forces that length encoding."""
    n = len(body)
    form = length_form or (1 if n < 192 else 2 if n < 8384 else 5)
    if form == 1:
        assert n < 192, "one-octet lengths stop at 191"
        length = bytes([n])
    elif form == 2:
        assert 192 <= n < 8384, "two-octet lengths cover 192..8383"
        length = bytes([((n - 192) >> 8) + 192, (n - 192) & 0xFF])
    else:
        length = b"\xff" + n.to_bytes(4, "big")
    return bytes([0xC0 | tag]) + length + body


def subpacket(sp_type: int, data: bytes) -> bytes:
    """One signature subpacket (§5.2.3.1); set bit 0x80 of sp_type for critical."""
    n = len(data) + 1
    if n < 192:
        length = bytes([n])
    elif n < 8384:
        length = bytes([((n - 192) >> 8) + 192, (n - 192) & 0xFF])
    else:
        length = b"\xff" + n.to_bytes(4, "big")
    return length + bytes([sp_type]) + data


# --- subpackets ------------------------------------------------------------------------


def sp_created(timestamp: int) -> Subpacket:
    return (SP_CREATED, timestamp.to_bytes(4, "big"))


def sp_key_expires(seconds: int) -> Subpacket:
    """Key expiration time: seconds after the key's creation (0 = never)."""
    return (SP_KEY_EXPIRES, seconds.to_bytes(4, "big"))


def sp_signature_expires(seconds: int) -> Subpacket:
    """Signature expiration time: seconds after the signature's creation (0 = never)."""
    return (SP_SIGNATURE_EXPIRES, seconds.to_bytes(4, "big"))


def sp_key_flags(flags: int) -> Subpacket:
    return (SP_KEY_FLAGS, bytes([flags]))


def sp_issuer(key: Key) -> Subpacket:
    return (SP_ISSUER, bytes.fromhex(key.key_id))


def sp_issuer_fingerprint(key: Key) -> Subpacket:
    return (SP_ISSUER_FINGERPRINT, b"\x04" + bytes.fromhex(key.fingerprint))


def sp_embedded_signature(signature_body: bytes) -> Subpacket:
    return (SP_EMBEDDED_SIGNATURE, signature_body)


def sp_primary_uid(primary: bool = True) -> Subpacket:
    return (SP_PRIMARY_UID, bytes([int(primary)]))


def sp_revocation_reason(code: int = 0, text: str = "") -> Subpacket:
    return (SP_REVOCATION_REASON, bytes([code]) + text.encode())


# --- what a signature hashes (§5.2.4) ---------------------------------------------------


def key_hash_prefix(key: Key) -> bytes:
    """0x99, the 2-byte body length, the public-key body."""
    body = key.packet_body
    return b"\x99" + len(body).to_bytes(2, "big") + body


def uid_hash_prefix(uid: str) -> bytes:
    """0xB4, the 4-byte user id length, the user id."""
    raw = uid.encode()
    return b"\xb4" + len(raw).to_bytes(4, "big") + raw


def canonical_text(data: bytes) -> bytes:
    """A text signature's (0x01) view of the data, as Go's canonicalTextHash writes it:
    a lone LF becomes CRLF, and a CR lets the byte after it pass unexamined."""
    out = bytearray()
    after_cr = False
    for byte in data:
        if not after_cr and byte == 0x0A:
            out += b"\r\n"
        else:
            out.append(byte)
        after_cr = not after_cr and byte == 0x0D
    return bytes(out)


def signed_material(
    sig_type: int,
    *,
    data: bytes = b"",
    primary: Key | None = None,
    subkey: Key | None = None,
    uid: str | None = None,
) -> bytes:
    """The bytes a signature of `sig_type` hashes before its trailer."""
    if sig_type == SIG_BINARY:
        return data
    if sig_type == SIG_TEXT:
        return canonical_text(data)
    assert primary is not None, "key signatures hash the primary key"
    if sig_type in (0x10, 0x11, 0x12, SIG_POSITIVE_CERT, 0x30):
        assert uid is not None
        return key_hash_prefix(primary) + uid_hash_prefix(uid)
    if sig_type in (SIG_SUBKEY_BINDING, SIG_PRIMARY_KEY_BINDING, SIG_SUBKEY_REVOCATION):
        assert subkey is not None
        return key_hash_prefix(primary) + key_hash_prefix(subkey)
    if sig_type in (SIG_KEY_REVOCATION, 0x1F):
        return key_hash_prefix(primary)
    raise ValueError(f"unsupported signature type {sig_type:#x}")


# --- signatures ------------------------------------------------------------------------


def signature_body(
    key: Key,
    sig_type: int,
    hash_algo: int,
    hashed: Sequence[Subpacket],
    unhashed: Sequence[Subpacket],
    material: bytes,
) -> bytes:
    """A v4 signature packet body (§5.2.3) by `key` over `material` (see signed_material)."""
    hashed_area = b"".join(subpacket(t, d) for t, d in hashed)
    unhashed_area = b"".join(subpacket(t, d) for t, d in unhashed)
    head = bytes([4, sig_type, key.algo, hash_algo]) + len(hashed_area).to_bytes(2, "big")
    head += hashed_area
    trailer = b"\x04\xff" + len(head).to_bytes(4, "big")
    digest = hashlib.new(HASHES[hash_algo][0], material + head + trailer).digest()
    tail = len(unhashed_area).to_bytes(2, "big") + unhashed_area + digest[:2]
    return head + tail + key.sign_digest(digest, hash_algo)


def sign(
    key: Key,
    sig_type: int,
    *,
    hash_algo: int = 10,
    created: int | None = None,
    extra_hashed: Sequence[Subpacket] = (),
    issuer: bool = True,
    data: bytes = b"",
    primary: Key | None = None,
    subkey: Key | None = None,
    uid: str | None = None,
) -> bytes:
    """A signature body with the usual subpackets: creation time, issuer fingerprint
    (hashed), issuer key id (unhashed)."""
    hashed = [sp_created(key.created if created is None else created), *extra_hashed]
    unhashed: list[Subpacket] = []
    if issuer:
        hashed.append(sp_issuer_fingerprint(key))
        unhashed.append(sp_issuer(key))
    material = signed_material(sig_type, data=data, primary=primary, subkey=subkey, uid=uid)
    return signature_body(key, sig_type, hash_algo, hashed, unhashed, material)


def corrupt(signature: bytes) -> bytes:
    """Flip the last bit of the last signature MPI (its length stays valid)."""
    return signature[:-1] + bytes([signature[-1] ^ 0x01])


# --- transferable public keys ----------------------------------------------------------


@dataclass
class SubkeySpec:
    """A subkey and how its binding is made."""

    key: Key
    flags: int = SIGN
    binding_by: Key | None = None  # None: the primary, as it should be
    cross_sig: bool | None = None  # None: yes for signing subkeys
    expires: int | None = None  # seconds after the subkey's creation
    revoked: bool = False
    corrupt_binding: bool = False


def build_cert(
    primary: Key,
    uid: str = "craft test key <craft@example.org>",
    primary_flags: int = CERTIFY | SIGN,
    subkeys: Sequence[SubkeySpec] = (),
    primary_expires: int | None = None,
    revoked: bool = False,
    self_sig_hash: int = 10,
) -> bytes:
    """A transferable public key (§11.1) as binary packets."""
    out = packet(TAG_PUBLIC_KEY, primary.packet_body)
    if revoked:
        revocation = sign(
            primary,
            SIG_KEY_REVOCATION,
            hash_algo=self_sig_hash,
            extra_hashed=[sp_revocation_reason()],
            primary=primary,
        )
        out += packet(TAG_SIGNATURE, revocation)
    self_hashed = [sp_key_flags(primary_flags), sp_primary_uid()]
    if primary_expires is not None:
        self_hashed.append(sp_key_expires(primary_expires))
    out += packet(TAG_USER_ID, uid.encode())
    certification = sign(
        primary,
        SIG_POSITIVE_CERT,
        hash_algo=self_sig_hash,
        extra_hashed=self_hashed,
        primary=primary,
        uid=uid,
    )
    out += packet(TAG_SIGNATURE, certification)
    for spec in subkeys:
        out += subkey_packets(primary, spec, self_sig_hash)
    return out


def subkey_packets(primary: Key, spec: SubkeySpec, hash_algo: int = 10) -> bytes:
    """The subkey packet, its binding signature and, if asked, its revocation."""
    sub = spec.key
    when = max(primary.created, sub.created)
    hashed = [sp_key_flags(spec.flags)]
    if spec.expires is not None:
        hashed.append(sp_key_expires(spec.expires))
    cross_sig = spec.cross_sig if spec.cross_sig is not None else bool(spec.flags & SIGN)
    if cross_sig:
        back = sign(
            sub,
            SIG_PRIMARY_KEY_BINDING,
            hash_algo=hash_algo,
            created=when,
            primary=primary,
            subkey=sub,
        )
        hashed.append(sp_embedded_signature(back))
    binder = spec.binding_by or primary
    binding = sign(
        binder,
        SIG_SUBKEY_BINDING,
        hash_algo=hash_algo,
        created=when,
        extra_hashed=hashed,
        primary=primary,
        subkey=sub,
    )
    if spec.corrupt_binding:
        binding = corrupt(binding)
    out = packet(TAG_PUBLIC_SUBKEY, sub.packet_body) + packet(TAG_SIGNATURE, binding)
    if spec.revoked:
        revocation = sign(
            primary,
            SIG_SUBKEY_REVOCATION,
            hash_algo=hash_algo,
            created=when,
            extra_hashed=[sp_revocation_reason()],
            primary=primary,
            subkey=sub,
        )
        out += packet(TAG_SIGNATURE, revocation)
    return out


# --- building keys packet by packet ----------------------------------------------------

DEFAULT_UID = "craft test key <craft@example.org>"


def key_packet(key: Key) -> bytes:
    return packet(TAG_PUBLIC_KEY, key.packet_body)


def subkey_packet(key: Key) -> bytes:
    return packet(TAG_PUBLIC_SUBKEY, key.packet_body)


def user_id_packet(uid: str = DEFAULT_UID) -> bytes:
    return packet(TAG_USER_ID, uid.encode())


def signature_packet(body: bytes) -> bytes:
    return packet(TAG_SIGNATURE, body)


def user_id_signature(
    primary: Key,
    uid: str = DEFAULT_UID,
    *,
    flags: int = CERTIFY | SIGN,
    sig_type: int = SIG_POSITIVE_CERT,
    created: int | None = None,
    issuer: bool = True,
    extra: Sequence[Subpacket] = (),
) -> bytes:
    """A self-signature over a user ID, with key flags."""
    hashed = [sp_key_flags(flags), *extra]
    return sign(primary, sig_type, created=created, extra_hashed=hashed, issuer=issuer,
                primary=primary, uid=uid)  # fmt: skip


def binding_signature(
    primary: Key,
    sub: Key,
    *,
    flags: int = SIGN,
    by: Key | None = None,
    created: int | None = None,
    back: bool = True,
    back_type: int = SIG_PRIMARY_KEY_BINDING,
    extra: Sequence[Subpacket] = (),
) -> bytes:
    """A subkey binding by `by` (default the primary), with the subkey's back-signature."""
    when = created if created is not None else max(primary.created, sub.created)
    hashed = [sp_key_flags(flags), *extra]
    if back:
        back_sig = sign(sub, back_type, created=when, primary=primary, subkey=sub)
        hashed.append(sp_embedded_signature(back_sig))
    return sign(by or primary, SIG_SUBKEY_BINDING, created=when, extra_hashed=hashed,
                primary=primary, subkey=sub)  # fmt: skip


def detached_with(
    key: Key,
    data: bytes,
    hashed: Sequence[Subpacket],
    unhashed: Sequence[Subpacket],
    *,
    hash_algo: int = 10,
) -> bytes:
    """A binary detached signature packet body with exactly these subpackets."""
    return signature_body(key, SIG_BINARY, hash_algo, hashed, unhashed, data)


# --- detached signatures and armor -----------------------------------------------------


def detached_signature(
    key: Key,
    data: bytes,
    *,
    sig_type: int = SIG_BINARY,
    hash_algo: int = 10,
    created: int | None = None,
    issuer: bool = True,
) -> str:
    """An armored detached signature; `created` defaults to now, issuer=False drops the
    issuer subpackets."""
    body = sign(
        key,
        sig_type,
        hash_algo=hash_algo,
        created=int(time.time()) if created is None else created,
        issuer=issuer,
        data=data,
    )
    return armor(packet(TAG_SIGNATURE, body), "PGP SIGNATURE")


def crc24(data: bytes) -> int:
    """The armor checksum (§6.1)."""
    crc = 0xB704CE
    for byte in data:
        crc ^= byte << 16
        for _ in range(8):
            crc <<= 1
            if crc & 0x1000000:
                crc ^= 0x1864CFB
    return crc & 0xFFFFFF


def armor(data: bytes, label: str) -> str:
    """ASCII armor (§6.2): 64-column base64 and a CRC-24 line."""
    encoded = base64.b64encode(data).decode()
    lines = [encoded[i : i + 64] for i in range(0, len(encoded), 64)]
    checksum = base64.b64encode(crc24(data).to_bytes(3, "big")).decode()
    return "\n".join(
        [f"-----BEGIN {label}-----", "", *lines, f"={checksum}", f"-----END {label}-----", ""]
    )


def armor_public(data: bytes) -> str:
    return armor(data, "PGP PUBLIC KEY BLOCK")


# --- a set of keys for tests -------------------------------------------------------------


@dataclass(frozen=True)
class Keys:
    """An RSA primary, a subkey for it and a stranger; an ECDSA primary and subkey."""

    primary: RsaKey
    sub: RsaKey
    other: RsaKey
    ec_primary: EcdsaKey
    ec_sub: EcdsaKey

    @classmethod
    def generate(cls) -> Keys:
        rsa_keys = (RsaKey.generate() for _ in range(3))
        return cls(*rsa_keys, EcdsaKey.generate(), EcdsaKey.generate())
