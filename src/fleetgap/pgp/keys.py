"""OpenPGP keys: read public keys as the agent does, generate and load signing keys.

spec: agent-artifacts §6.3 — a key source must be ASCII-armored (public or private key
block) and only its first armored block counts. Signing keys must be ones Go's
x/crypto/openpgp (Elastic Agent, Fleet Server) can verify: v4 RSA, DSA or ECDSA on the
NIST curves; EdDSA/Ed25519 (pysequoia's default) is rejected by the agent
(anchors-and-deps §B.1).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pysequoia
from pysequoia.packet import PacketPile, Tag

from fleetgap.errors import FleetgapError
from fleetgap.pgp._sequoia import sequoia_message
from fleetgap.pgp.armor import (
    PRIVATE_KEY_BLOCK,
    PUBLIC_KEY_BLOCK,
    ArmorError,
    first_armored_block,
)
from fleetgap.pgp.packets import (
    KeyFields,
    PacketError,
    SignatureFields,
    parse_key,
    parse_signature,
)
from fleetgap.pgp.signature_math import (
    SignatureMathError,
    verify_key_signature,
    verify_user_id_signature,
)

ELASTIC_FINGERPRINT = "46095ACC8548582C1A2699A9D27D666CD88E42B4"

_KEY_TAGS = (Tag.PublicKey, Tag.PublicSubkey, Tag.SecretKey, Tag.SecretSubkey)
_GO_ALGORITHMS = {  # pysequoia's PublicKeyAlgorithm names -> what Go x/crypto/openpgp reads
    "RSAEncryptSign": "RSA",
    "RSAEncrypt": "RSA",
    "RSASign": "RSA",
    "DSA": "DSA",
    "ElGamalEncrypt": "ElGamal",
    "ECDSA": "ECDSA",
    "ECDH": "ECDH",
}
_WEAK_HASHES = {1, 2, 3}  # MD5, SHA-1, RIPEMD-160
_FLAG_SIGN = 0x02
_SIG_CERTIFICATIONS = {0x10, 0x11, 0x12, 0x13}
_SIG_SUBKEY_BINDING = 0x18
_SIG_DIRECT_KEY = 0x1F
_SIG_KEY_REVOCATION = 0x20
_SIG_SUBKEY_REVOCATION = 0x28
_KEY_RING = "read armored key ring: openpgp: invalid data"
_NIST_CURVE_OIDS = {  # the only curves Go x/crypto/openpgp parses
    bytes.fromhex("2a8648ce3d030107"): "P-256",
    bytes.fromhex("2b81040022"): "P-384",
    bytes.fromhex("2b81040023"): "P-521",
}


class KeyFileError(FleetgapError):
    """A key file that cannot be used (not armored, not a key, unsupported algorithm)."""


@dataclass(frozen=True)
class ComponentKey:
    """A primary key or subkey as Go sees it: its ID, material and whether it may sign."""

    key_id: str  # upper hex
    fields: KeyFields | None  # None when the packet is not a v4 key we can read
    can_sign: bool  # Go's rule: no key flags, or flags with "sign"
    primary_id: str = ""  # the key ID of the primary key it belongs to
    unusable: str | None = None  # why it may not sign: revoked, a broken binding in the key
    expires: int | None = None  # seconds since the epoch; None: never (Go does not check it)


@dataclass(frozen=True)
class PublicKey:
    """One key source's certificates (normally one); `cert` is the first."""

    cert: pysequoia.Cert
    others: tuple[pysequoia.Cert, ...] = ()
    components: tuple[ComponentKey, ...] = ()
    user_ids: tuple[str, ...] = ()
    # Self-signatures made with SHA-1/MD5: pysequoia's policy rejects the key, Go does not.
    weak_self_signatures: bool = False

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
    def primary_key_ids(self) -> frozenset[str]:
        return frozenset(cert.fingerprint.upper()[-16:] for cert in self.certs)

    @property
    def key_ids(self) -> frozenset[str]:
        return frozenset(c.key_id for c in self.components)

    @property
    def armored(self) -> str:
        return "".join(str(cert) for cert in self.certs)

    def signing_key(self, key_id: str) -> ComponentKey | None:
        """The component with this ID that may sign (Go: KeysByIdUsage(id, sign))."""
        return next((c for c in self.components if c.key_id == key_id and c.can_sign), None)

    def __str__(self) -> str:
        uid = self.user_ids[0] if self.user_ids else "no user id"
        return f"{self.fingerprint} ({uid})"


def utc_text(seconds: int) -> str:
    """A key or signature time as operators read it: 2026-01-31T12:00:00Z."""
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_public_key(data: bytes | str) -> PublicKey:
    """The first armored block of `data` as a public key (a private key block also works)."""
    try:
        block = first_armored_block(data)
    except ArmorError as exc:
        raise KeyFileError(f"read armored key ring: {exc}") from None
    if block.kind not in (PUBLIC_KEY_BLOCK, PRIVATE_KEY_BLOCK):
        raise KeyFileError(
            f"read armored key ring: expected public or private key block, got: {block.kind}"
        )
    raw = block.text.encode()
    try:
        if block.kind == PRIVATE_KEY_BLOCK:
            certs = [pysequoia.Tsk.from_bytes(raw).extract_certificate()]
            raw = str(certs[0]).encode()  # key signatures cover the public key packets
        else:
            certs = pysequoia.Cert.split_bytes(raw)
        packets = list(PacketPile.from_bytes(raw))
    except Exception as exc:  # pysequoia raises RuntimeError/ValueError with Rust text
        raise KeyFileError(f"read armored key ring: {sequoia_message(exc)}") from None
    if not certs:
        raise KeyFileError("read armored key ring: no keys in the armored block")
    components, user_ids, weak = _inspect(packets)
    return PublicKey(certs[0], tuple(certs[1:]), components, user_ids, weak)


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
        packets = _key_packets(str(tsk).encode())
        if not any(p.tag == Tag.SecretKey for p in packets):
            raise KeyFileError(f"{origin}: not a secret key (it holds only a public key)")
        problem = go_incompatibility(packets)
        if problem:
            raise KeyFileError(
                f"{origin}: refusing to sign with this key: {problem}; Elastic Agent and Fleet "
                "Server (Go x/crypto/openpgp) could not verify its signatures — use an RSA key "
                "(`fleetgap keys generate` makes RSA-4096)"
            )
        key = cls(tsk, password)
        key.signer()  # fail now, with a clear message, if it cannot sign
        return key

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


def go_incompatibility(packets: Iterable) -> str | None:
    """Why Go's x/crypto/openpgp could not use these key packets, or None if it can."""
    for packet in packets:
        body = bytes(packet.body or b"")
        algo = str(packet.key_algorithm).rsplit(".", 1)[-1]
        name = _GO_ALGORITHMS.get(algo)
        if not body or body[0] != 4:
            return f"key {packet.key_id} is not a v4 key (Go reads only v4 keys)"
        if name is None:
            return f"key {packet.key_id} uses {algo}, which Go x/crypto/openpgp does not support"
        if name in ("ECDSA", "ECDH"):
            oid_len = body[6] if len(body) > 6 else 0
            oid = body[7 : 7 + oid_len]
            if oid not in _NIST_CURVE_OIDS:
                return (
                    f"key {packet.key_id} uses {name} on a curve Go x/crypto/openpgp does not "
                    "support (only P-256, P-384, P-521)"
                )
    return None


def _inspect(packets: list) -> tuple[tuple[ComponentKey, ...], tuple[str, ...], bool]:
    """Component keys with Go's signing rule and their verified standing, user IDs, and
    whether any self-signature uses a weak hash (SHA-1/MD5: pysequoia refuses such keys)."""
    entities: list[_Entity] = []
    user_ids: list[str] = []
    for packet in packets:
        tag = packet.tag
        body = bytes(packet.body or b"")
        if tag in (Tag.PublicKey, Tag.SecretKey):
            entities.append(_Entity((packet.key_id or "").upper(), _key_fields(body)))
        elif not entities:
            continue
        elif tag in (Tag.PublicSubkey, Tag.SecretSubkey):
            entities[-1].start_subkey((packet.key_id or "").upper(), _key_fields(body))
        elif tag == Tag.UserID:
            user_ids.append(str(packet.user_id))
            entities[-1].start_user_id(_user_id_bytes(packet))
        elif tag == Tag.Signature:
            try:
                entities[-1].add_signature(parse_signature(body))
            except PacketError:
                continue
        else:
            entities[-1].start_other()
    components = tuple(c for entity in entities for c in entity.components())
    return components, tuple(user_ids), any(e.weak for e in entities)


class _Entity:
    """One primary key and what follows it, read the way Go's ReadEntity reads it: a
    subkey counts only with a binding signature by the primary that verifies (and, when
    the binding allows signing, the subkey's back-signature); the newest valid
    self-signature gives flags and expiry; verified revocations make a key unusable."""

    def __init__(self, key_id: str, fields: KeyFields | None) -> None:
        self.key_id = key_id
        self.fields = fields
        self.weak = False
        self._context: tuple[str, object] = ("primary", None)
        self._self_sigs: list[SignatureFields] = []
        self._revoked = False
        self._subkeys: list[_Subkey] = []

    def start_subkey(self, key_id: str, fields: KeyFields | None) -> None:
        self._subkeys.append(_Subkey(key_id, fields))
        self._context = ("subkey", self._subkeys[-1])

    def start_user_id(self, user_id: bytes) -> None:
        self._context = ("user_id", user_id)

    def start_other(self) -> None:
        self._context = ("other", None)

    def add_signature(self, sig: SignatureFields) -> None:
        if sig.issuer_key_id not in (None, self.key_id) or self.fields is None:
            return  # a third-party certification says nothing about key use
        if sig.hash_algo in _WEAK_HASHES:
            self.weak = True
        kind, value = self._context
        try:
            if kind == "primary" and sig.sig_type == _SIG_KEY_REVOCATION:
                verify_key_signature(sig, self.fields, self.fields)
                self._revoked = True
            elif kind == "primary" and sig.sig_type == _SIG_DIRECT_KEY:
                verify_key_signature(sig, self.fields, self.fields)
                self._self_sigs.append(sig)
            elif kind == "user_id" and sig.sig_type in _SIG_CERTIFICATIONS:
                verify_user_id_signature(sig, self.fields, value)  # type: ignore[arg-type]
                self._self_sigs.append(sig)
            elif kind == "subkey":
                self._add_subkey_signature(value, sig)  # type: ignore[arg-type]
        except SignatureMathError:
            return  # a self-signature that does not verify is ignored, as if absent

    def _add_subkey_signature(self, subkey: _Subkey, sig: SignatureFields) -> None:
        if subkey.fields is None or self.fields is None:
            return
        if sig.sig_type == _SIG_SUBKEY_REVOCATION:
            verify_key_signature(sig, self.fields, self.fields, subkey.fields)
            subkey.revoked = True
            return
        if sig.sig_type != _SIG_SUBKEY_BINDING:
            return
        try:
            verify_key_signature(sig, self.fields, self.fields, subkey.fields)
        except SignatureMathError as exc:
            subkey.problems.append(str(exc))
            raise
        if sig.key_flags is not None and sig.key_flags & _FLAG_SIGN:
            problem = _back_signature_problem(sig, self.fields, subkey.fields)
            if problem:
                subkey.problems.append(problem)
                return
        subkey.bindings.append(sig)

    def components(self) -> list[ComponentKey]:
        """Go refuses the whole key when one subkey's binding fails; a revoked key or
        subkey is an unknown entity to it (it never signs)."""
        newest = _newest(self._self_sigs)
        whole = self._whole_key_problem(newest)
        primary_problem = whole or (_revoked(f"key {self.key_id}") if self._revoked else None)
        found = [
            ComponentKey(
                self.key_id,
                self.fields,
                _may_sign(newest),
                self.key_id,
                primary_problem,
                _expiry(self.fields, newest),
            )
        ]
        for sub in self._subkeys:
            binding = _newest(sub.bindings)
            problem = primary_problem
            if problem is None and sub.revoked:
                problem = _revoked(f"subkey {sub.key_id}")
            expires = min(_known(_expiry(sub.fields, binding), _expiry(self.fields, newest)))
            found.append(
                ComponentKey(
                    sub.key_id, sub.fields, _may_sign(binding), self.key_id, problem, expires
                )
            )
        return found

    def _whole_key_problem(self, newest: SignatureFields | None) -> str | None:
        if newest is None:
            return f"{_KEY_RING}: key {self.key_id} has no valid self-signature"
        for sub in self._subkeys:
            if sub.fields is not None and not sub.bindings and not sub.revoked:
                why = sub.problems[-1] if sub.problems else "no binding signature"
                return f"{_KEY_RING}: subkey signature invalid: subkey {sub.key_id}: {why}"
        return None


@dataclass
class _Subkey:
    key_id: str
    fields: KeyFields | None
    bindings: list[SignatureFields] = field(default_factory=list)  # verified ones
    problems: list[str] = field(default_factory=list)  # why other bindings were refused
    revoked: bool = False


def _revoked(what: str) -> str:
    return f"openpgp: signature made by unknown entity ({what} is revoked)"


def _back_signature_problem(binding: SignatureFields, primary: KeyFields, subkey: KeyFields):
    """Go: a binding that lets a subkey sign needs the subkey's own signature back."""
    if binding.embedded is None:
        return "openpgp: invalid data: signing subkey is missing cross-signature"
    try:
        back = parse_signature(binding.embedded)
        verify_key_signature(back, subkey, primary, subkey)
    except (PacketError, SignatureMathError) as exc:
        return f"openpgp: invalid data: error while verifying cross-signature: {exc}"
    return None


def _newest(sigs: list[SignatureFields]) -> SignatureFields | None:
    return max(sigs, key=lambda sig: sig.created or 0, default=None)


def _may_sign(sig: SignatureFields | None) -> bool:
    # Go: a key may sign unless its self-signature carries key flags without "sign".
    return sig is None or sig.key_flags is None or bool(sig.key_flags & _FLAG_SIGN)


def _expiry(key: KeyFields | None, sig: SignatureFields | None) -> int | None:
    if key is None or sig is None or not sig.key_expires:
        return None
    return key.created + sig.key_expires


def _known(*values: int | None) -> tuple[int | None, ...]:
    known = tuple(v for v in values if v is not None)
    return known or (None,)


def _key_fields(body: bytes) -> KeyFields | None:
    try:
        return parse_key(body)
    except PacketError:
        return None


def _user_id_bytes(packet) -> bytes:
    body = packet.body
    return bytes(body) if body is not None else str(packet.user_id).encode()


def _key_packets(armored: bytes) -> list:
    return [p for p in PacketPile.from_bytes(armored) if p.tag in _KEY_TAGS]


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
