"""OpenPGP keys: read public keys as the agent does, generate and load signing keys.

spec: agent-artifacts §6.3 — a key source must be ASCII-armored (public or private key
block) and only its first armored block counts. Signing keys must be ones Go's
x/crypto/openpgp (Elastic Agent, Fleet Server) can verify: v4 RSA, DSA or ECDSA on the
NIST curves; EdDSA/Ed25519 (pysequoia's default) is rejected by the agent
(anchors-and-deps §B.1).
"""

from __future__ import annotations

import base64
import os
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pysequoia

from fleetgap.errors import FleetgapError
from fleetgap.pgp._sequoia import sequoia_message
from fleetgap.pgp.armor import (
    PRIVATE_KEY_BLOCK,
    PUBLIC_KEY_BLOCK,
    ArmorError,
    count_armored_blocks,
    dearmor,
    first_armored_block,
)
from fleetgap.pgp.key_standing import (
    OTHER,
    PRIMARY,
    SIGNATURE,
    SUBKEY,
    USER_ID,
    ComponentKey,
    Packet,
    read_standing,
)
from fleetgap.pgp.packet_stream import (
    TAG_PUBLIC_KEY,
    TAG_PUBLIC_SUBKEY,
    TAG_SECRET_KEY,
    TAG_SECRET_SUBKEY,
    TAG_SIGNATURE,
    TAG_USER_ATTRIBUTE,
    TAG_USER_ID,
    RawPacket,
    read_packets,
)
from fleetgap.pgp.packets import PacketError, key_id_of, parse_key, parse_signature_end
from fleetgap.pgp.protect import protect_secret_key

_NOT_A_KEY = "openpgp: invalid data: first packet was not a public/private key"
ELASTIC_FINGERPRINT = "46095ACC8548582C1A2699A9D27D666CD88E42B4"
PASSPHRASE_ENV = "FLEETGAP_KEY_PASSPHRASE"  # a signing key's passphrase, when no file gives it

_KEY_TAGS = (TAG_PUBLIC_KEY, TAG_PUBLIC_SUBKEY, TAG_SECRET_KEY, TAG_SECRET_SUBKEY)


class KeyFileError(FleetgapError):
    """A key file that cannot be used (not armored, not a key, unsupported algorithm)."""


@dataclass(frozen=True)
class PublicKey:
    """One key source's certificates (exactly one when read as a trust anchor by
    `parse_public_key`; `read_key_ring` keeps all, as Go does); `cert` is the first."""

    cert: pysequoia.Cert
    others: tuple[pysequoia.Cert, ...] = ()
    components: tuple[ComponentKey, ...] = ()
    user_ids: tuple[str, ...] = ()
    # Self-signatures made with SHA-1/MD5: pysequoia's policy rejects the key, Go does not.
    weak_self_signatures: bool = False
    primary_keys: int = 1  # primary key packets in the block (a certificate each)
    # why Go could read packets this parser does not see (bytes left in a packet), or None
    hidden_packets: str | None = None

    @property
    def certs(self) -> tuple[pysequoia.Cert, ...]:
        return (self.cert, *self.others)

    @property
    def fingerprint(self) -> str:
        return self.cert.fingerprint.upper()

    @property
    def key_id(self) -> str:
        """The primary key's 16-hex-digit key ID, upper case."""
        return self.fingerprint[-16:]

    @property
    def armored(self) -> str:
        return "".join(str(cert) for cert in self.certs)

    @property
    def refusal(self) -> str | None:
        """Why Go refuses a key of this file whole (`read armored key ring: …`), when one
        reason stands for every refused key."""
        reasons = {c.unusable for c in self.components if c.key_refused}
        return reasons.pop() if len(reasons) == 1 else None

    def signing_key(self, key_id: str) -> ComponentKey | None:
        """The component with this ID that may sign (Go: KeysByIdUsage(id, sign)): a usable
        one first, when the same key appears twice."""
        matches = [c for c in self.components if c.key_id == key_id and c.can_sign]
        return next((c for c in matches if c.unusable is None), matches[0] if matches else None)

    def __str__(self) -> str:
        uid = self.user_ids[0] if self.user_ids else "no user id"
        return f"{self.fingerprint} ({uid})"


def utc_text(seconds: int) -> str:
    """A key or signature time as operators read it: 2026-01-31T12:00:00Z."""
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_public_key(data: bytes | str) -> PublicKey:
    """`data` as a trust anchor: exactly one certificate (public or private key block).

    Go's agent accepts a signature by any key of the file it is given, while a pinned or
    given fingerprint names one certificate; so a file that holds more (in one armored block
    or several) is refused here, the one place every command reads a trusted key through.
    """
    key = read_key_ring(data)
    problem = _not_one_certificate(key, data)
    if problem:
        raise KeyFileError(problem)
    return key


def served_key_problem(data: bytes) -> str | None:
    """Why a key file must not be served to agents (it reads as more than one certificate),
    else None. Bytes with no key block at all are served as they are, as Fleet Server does:
    no agent can trust them. A key block this reader cannot read is refused: Go reads on
    where it stops (it skips a byte that starts no packet, a block needs no END line), and
    may find certificates in it."""
    try:
        key = read_key_ring(data)
    except KeyFileError as exc:
        if _has_key_block(data):
            return f"a key block that does not read as one certificate ({exc})"
        return None
    return _not_one_certificate(key, data)


def _has_key_block(data: bytes | str) -> bool:
    """Whether a public or private key block of `data` starts with a key packet, read as
    leniently as Go reads it (no END line or checksum needed, any line may be the BEGIN)."""
    text = data.decode("utf-8", "replace") if isinstance(data, bytes) else data
    lines = [line.strip() for line in text.splitlines()]
    kinds = (f"-----BEGIN {PUBLIC_KEY_BLOCK}", f"-----BEGIN {PRIVATE_KEY_BLOCK}")
    for start, line in enumerate(lines):
        if not line.startswith(kinds):
            continue
        rest = lines[start + 1 :]
        rest = rest[rest.index("") + 1 :] if "" in rest else rest
        body = []
        for line in rest:
            if line.startswith("-----") or (line.startswith("=") and len(line) == 5):
                break
            body.append(line)
        joined = "".join(body)
        try:
            first = base64.b64decode(joined[:8], validate=True)[:1]
        except ValueError:
            continue
        if first and first[0] & 0x80:
            tag = first[0] & 0x3F if first[0] & 0x40 else (first[0] >> 2) & 0x0F
            if tag in (TAG_PUBLIC_KEY, TAG_SECRET_KEY):
                return True
    return False


def _not_one_certificate(key: PublicKey, data: bytes | str) -> str | None:
    if key.hidden_packets:
        return (
            f"{key.hidden_packets}: Go reads what a packet leaves unread as further packets "
            "(it may be another certificate); a trusted key file must hold exactly one "
            f"certificate (the first is {key.fingerprint})"
        )
    blocks = count_armored_blocks(data)
    certificates = max(key.primary_keys, 1 + len(key.others))
    if certificates == 1 and blocks <= 1:
        return None
    count = f"{certificates} certificates" if certificates > 1 else f"{blocks} armored blocks"
    return (
        f"holds {count}; a trusted key file must hold exactly one certificate "
        f"(the first is {key.fingerprint})"
    )


def read_key_ring(data: bytes | str) -> PublicKey:
    """The first armored block of `data` as Go reads it (every certificate in it), for
    modelling the agent; trust goes through `parse_public_key`."""
    try:
        block = first_armored_block(data)
    except ArmorError as exc:
        raise KeyFileError(f"read armored key ring: {exc}") from None
    if block.kind not in (PUBLIC_KEY_BLOCK, PRIVATE_KEY_BLOCK):
        raise KeyFileError(
            f"read armored key ring: expected public or private key block, got: {block.kind}"
        )
    try:
        # Sequoia reads the very bytes the packets below are read from: its own armor
        # reader takes lines this one (and Go) leave out, and the two disagreed on the key
        raw = dearmor(block)
        packets = read_packets(raw)
    except (ArmorError, PacketError) as exc:
        raise KeyFileError(f"read armored key ring: {exc}") from None
    if not packets or packets[0].tag not in (TAG_PUBLIC_KEY, TAG_SECRET_KEY):
        raise KeyFileError(f"read armored key ring: {_NOT_A_KEY}")
    try:
        if block.kind == PRIVATE_KEY_BLOCK:
            certs = [pysequoia.Tsk.from_bytes(raw).extract_certificate()]
        else:
            certs = pysequoia.Cert.split_bytes(raw)
    except Exception as exc:  # pysequoia raises RuntimeError/ValueError with Rust text
        raise KeyFileError(f"read armored key ring: {sequoia_message(exc)}") from None
    if not certs:
        raise KeyFileError("read armored key ring: no keys in the armored block")
    primaries = sum(p.tag in (TAG_PUBLIC_KEY, TAG_SECRET_KEY) for p in packets)
    components, user_ids, weak = _inspect(packets)
    hidden = _hidden_packets(packets)
    return PublicKey(certs[0], tuple(certs[1:]), components, user_ids, weak, primaries, hidden)


# packets that belong in a certificate; Go parses the others it knows without reading their
# whole body (a compressed packet not at all), and reads the rest as more packets
_CERT_TAGS = frozenset({*_KEY_TAGS, TAG_SIGNATURE, TAG_USER_ID, TAG_USER_ATTRIBUTE})


def _hidden_packets(packets: list[RawPacket]) -> str | None:
    """Why Go's packet reader would go on reading inside a packet of this block, or None.

    Go's signature and public-key parsers stop after their last MPI and leave the rest of
    the packet in the stream, where the next read takes it as packets; so bytes after a
    packet's fields can hide a certificate that neither this reader nor Sequoia sees.
    """
    for packet in packets:
        tag, body = packet.tag, packet.body
        if tag not in _CERT_TAGS:
            return f"a packet of type {tag} in a key block"
        if tag in (TAG_PUBLIC_KEY, TAG_PUBLIC_SUBKEY):
            if body[:1] != b"\x04":
                return f"a version {body[:1].hex() or '?'} key packet"
            try:
                end = len(parse_key(body).body)
            except PacketError:
                continue  # Go refuses it too, and skips the whole packet
        elif tag == TAG_SIGNATURE:
            if body[:1] != b"\x04":
                return f"a version {body[:1].hex() or '?'} signature packet"
            try:
                end = parse_signature_end(body)
            except PacketError:
                continue
        else:
            continue
        if end != len(body):
            return f"{len(body) - end} bytes after the fields of a packet of type {tag}"
    return None


def read_public_key(path: Path) -> PublicKey:
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise KeyFileError(f"cannot read key file {path}: {exc.strerror}") from None
    try:
        return parse_public_key(data)
    except KeyFileError as exc:
        raise KeyFileError(f"{path}: {exc}") from None


@dataclass(frozen=True)
class SecretKey:
    """A signing key that Elastic Agent and Fleet Server can verify signatures of."""

    tsk: pysequoia.Tsk
    password: str | None = None

    @classmethod
    def generate(cls, uid: str) -> SecretKey:
        """A new RSA-4096 key (v4): certification primary, signing and encryption subkeys."""
        tsk = pysequoia.Tsk.generate(
            uid, cipher_suite=pysequoia.CipherSuite.RSA4k, profile=pysequoia.Profile.RFC4880
        )
        return cls(tsk)

    @classmethod
    def read(cls, path: Path, password: str | None = None) -> SecretKey:
        try:
            data = Path(path).read_bytes()
        except OSError as exc:
            raise KeyFileError(f"cannot read key file {path}: {exc.strerror}") from None
        return cls.parse(data, password, origin=str(path))

    @classmethod
    def parse(cls, data: bytes, password: str | None = None, origin: str = "key") -> SecretKey:
        try:
            tsk = pysequoia.Tsk.from_bytes(data)
        except Exception as exc:
            raise KeyFileError(f"{origin}: not a secret key: {sequoia_message(exc)}") from None
        packets = key_packets(str(tsk))
        if not any(p.tag == TAG_SECRET_KEY for p in packets):
            raise KeyFileError(f"{origin}: not a secret key (it holds only a public key)")
        problem = go_incompatibility(packets)
        if problem:
            raise KeyFileError(
                f"{origin}: refusing to sign with this key: {problem}; Elastic Agent and Fleet "
                "Server (Go x/crypto/openpgp) could not verify its signatures — use an RSA key "
                "(`fleetgap keys generate` makes RSA-4096)"
            )
        key = cls(tsk, password)
        try:
            key.signer()  # fail now, with a clear message, if it cannot sign
        except KeyFileError as exc:
            if password is None and "encrypted" in str(exc):
                raise KeyFileError(
                    f"{origin} is protected by a passphrase: give --passphrase-file FILE or "
                    f"set {PASSPHRASE_ENV}"
                ) from None
            if password is not None:
                raise KeyFileError(f"{origin}: the passphrase does not unlock the key") from None
            raise
        return key

    def protected(self, passphrase: str) -> SecretKey:
        """This key with its secret material encrypted under `passphrase` (checked: the
        result is unlocked with it before it is returned)."""
        armored = pysequoia.armor(
            protect_secret_key(dearmor(first_armored_block(self.armored)), passphrase),
            pysequoia.ArmorKind.SecretKey,
        )
        return SecretKey.parse(armored.encode(), passphrase, origin="the protected key")

    @property
    def public_key(self) -> PublicKey:
        return parse_public_key(str(self.tsk.extract_certificate()))

    @property
    def fingerprint(self) -> str:
        return self.public_key.fingerprint

    @property
    def armored(self) -> str:
        return str(self.tsk)

    def signer(self) -> pysequoia.PySigner:
        try:
            return self.tsk.signer(self.password)
        except Exception as exc:
            raise KeyFileError(f"key cannot sign: {sequoia_message(exc)}") from None

    def write(self, secret_path: Path, public_path: Path | None = None) -> None:
        """Secret key with mode 0600 (and optionally the public key), each written atomically."""
        write_atomic(Path(secret_path), self.armored.encode(), mode=0o600)
        if public_path is not None:
            write_atomic(Path(public_path), self.public_key.armored.encode(), mode=0o644)


def go_incompatibility(packets: Iterable[RawPacket]) -> str | None:
    """Why Go's x/crypto/openpgp could not use these key packets, or None if it can."""
    for packet in packets:
        if packet.tag in _KEY_TAGS:
            try:
                parse_key(packet.body)
            except PacketError as exc:
                return f"key {key_id_of(packet.body)}: {exc}"
    return None


def _inspect(packets: list[RawPacket]) -> tuple[tuple[ComponentKey, ...], tuple[str, ...], bool]:
    """Component keys with their right to sign (key_standing.py), user IDs, and whether
    any self-signature uses a weak hash."""
    records: list[Packet] = []
    user_ids: list[str] = []
    for packet in packets:
        tag, body = packet.tag, packet.body
        if tag in _KEY_TAGS:
            kind = PRIMARY if tag in (TAG_PUBLIC_KEY, TAG_SECRET_KEY) else SUBKEY
            try:
                fields, problem = parse_key(body), None
            except PacketError as exc:
                fields, problem = None, _go_words(str(exc))
            # the public part of a key Go cannot read is not known: the ID is then over it all
            key_id = key_id_of(fields.body if fields else body)
            records.append(Packet(kind, body, key_id, fields, problem))
        elif tag == TAG_USER_ID:
            user_ids.append(body.decode("utf-8", "replace"))
            records.append(Packet(USER_ID, body))
        elif tag == TAG_SIGNATURE:
            records.append(Packet(SIGNATURE, body))
        else:
            records.append(Packet(OTHER))
    standing = read_standing(records)
    return standing.components, tuple(user_ids), standing.weak_self_signatures


def _go_words(problem: str) -> str:
    return problem if problem.startswith("openpgp:") else f"openpgp: invalid data: {problem}"


def key_packets(armored: str) -> list[RawPacket]:
    return [p for p in read_packets(dearmor(first_armored_block(armored))) if p.tag in _KEY_TAGS]


def write_atomic(path: Path, data: bytes, *, mode: int = 0o644) -> None:
    """Write to a temp file beside `path`, chmod, then os.replace: readers never see half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
