"""Which keys of a key file may sign, decided as Go's x/crypto/openpgp (the agent) reads a key.

spec: agent-artifacts §6.3. Go's ReadEntity refuses a whole key (its primary and every
subkey) when anything in it does not hold: a user-ID self-signature by the primary that
does not verify, a key revocation that does not verify, a subkey followed by anything but
binding/revocation signatures that verify (a binding that lets the subkey sign also needs
the subkey's back-signature) or by nothing, a key without a self-signed user ID, or a key
packet Go cannot read (EdDSA, Curve25519). Of what remains: a revoked key never signs; a subkey's
newest binding and the primary user ID's last self-signature give the key flags; a key
may sign when it has no flags or has "sign". Key expiry is kept but, as in Go, not enforced.

One deliberate difference: Go lets a revoked subkey sign when its revocation carries no
reason subpacket; here a verified revocation always stops it (the safe side).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from fleetgap.pgp.packets import KeyFields, PacketError, SignatureFields, parse_signature
from fleetgap.pgp.signature_math import (
    SignatureMathError,
    verify_key_signature,
    verify_user_id_signature,
)

PRIMARY, SUBKEY, USER_ID, SIGNATURE, OTHER = "primary", "subkey", "user_id", "signature", "other"
_WEAK_HASHES = {1, 2, 3}  # MD5, SHA-1, RIPEMD-160
_FLAG_SIGN = 0x02
_SELF_CERTIFICATIONS = {0x10, 0x13}  # generic and positive, as Go counts them
_SIG_PRIMARY_KEY_BINDING = 0x19
_SIG_SUBKEY_BINDING = 0x18
_SIG_KEY_REVOCATION = 0x20
_SIG_SUBKEY_REVOCATION = 0x28
_INVALID = "read armored key ring: openpgp: invalid data"


@dataclass(frozen=True)
class Packet:
    """One packet of a key file, as plain data."""

    kind: str  # PRIMARY | SUBKEY | USER_ID | SIGNATURE | OTHER
    body: bytes = b""
    key_id: str = ""  # key packets: upper hex
    key: KeyFields | None = None  # key packets Go can read
    unsupported: str | None = None  # key packets Go cannot read: why


@dataclass(frozen=True)
class ComponentKey:
    """A primary key or subkey as Go sees it: its ID, material and whether it may sign."""

    key_id: str  # upper hex
    fields: KeyFields | None  # None when the packet is not a v4 key we can read
    can_sign: bool  # Go's rule: no key flags, or flags with "sign"
    primary_id: str = ""  # the key ID of the primary key it belongs to
    unusable: str | None = None  # why it may not sign: the key is refused, or revoked
    expires: int | None = None  # seconds since the epoch; None: never (Go does not check it)
    key_refused: bool = False  # `unusable` because Go refuses the whole key, not a revocation


@dataclass(frozen=True)
class Standing:
    components: tuple[ComponentKey, ...]
    weak_self_signatures: bool  # self-signatures with SHA-1/MD5 (pysequoia refuses those)


def read_standing(packets: Iterable[Packet]) -> Standing:
    """Every key of the file (primary keys and subkeys) with the right to sign."""
    entities: list[_Entity] = []
    for packet in packets:
        if packet.kind == PRIMARY:
            if packet.unsupported and packet.body[:1] == b"\x04" and entities:
                # Go meets the unreadable key while still reading the one before: both go
                entities[-1].refused = (
                    entities[-1].refused or f"read armored key ring: {packet.unsupported}"
                )
            entities.append(_Entity(packet))
        elif entities:
            entities[-1].add(packet)
    components = tuple(c for entity in entities for c in entity.components())
    return Standing(components, any(e.weak for e in entities))


class _Refused(Exception):
    """Go refuses the whole key; the message is its reason."""


@dataclass
class _Subkey:
    packet: Packet
    binding: SignatureFields | None = None  # the newest binding that verified
    revoked: bool = False


@dataclass
class _Entity:
    primary: Packet
    weak: bool = False
    refused: str | None = None
    revoked: bool = False
    self_signatures: list[tuple[SignatureFields, bytes]] = field(default_factory=list)
    subkeys: list[_Subkey] = field(default_factory=list)
    _context: tuple[str, object] = (PRIMARY, None)

    def add(self, packet: Packet) -> None:
        if self.refused:
            return
        try:
            self._add(packet)
        except _Refused as exc:
            self.refused = str(exc)

    def _add(self, packet: Packet) -> None:
        if packet.kind in (PRIMARY, SUBKEY) and packet.unsupported:
            raise _Refused(f"read armored key ring: {packet.unsupported}")
        if packet.kind == SUBKEY:
            self.subkeys.append(_Subkey(packet))
            self._context = (SUBKEY, self.subkeys[-1])
        elif packet.kind == USER_ID:
            self._context = (USER_ID, packet.body)
        elif packet.kind == SIGNATURE:
            self._signature(packet.body)
        else:
            self._context = (OTHER, None)

    def _signature(self, body: bytes) -> None:
        if body[:1] in (b"\x02", b"\x03"):  # Go reads v3 signatures but passes them over here
            self._context = (OTHER, None)
            return
        try:
            sig = parse_signature(body)
        except PacketError as exc:
            raise _Refused(f"read armored key ring: {exc}") from None
        if sig.issuer_key_id in (None, self.primary.key_id) and sig.hash_algo in _WEAK_HASHES:
            self.weak = True
        kind, value = self._context
        primary = self._primary_fields()
        if kind == SUBKEY:
            self._subkey_signature(value, sig, primary)  # type: ignore[arg-type]
        elif kind in (PRIMARY, OTHER) and sig.sig_type == _SIG_KEY_REVOCATION:
            _check(lambda: verify_key_signature(sig, primary, primary), "revocation signature")
            self.revoked = True
        elif (
            kind == USER_ID
            and sig.sig_type in _SELF_CERTIFICATIONS
            and sig.issuer_key_id == self.primary.key_id
        ):
            user_id: bytes = value  # type: ignore[assignment]
            _check(
                lambda: verify_user_id_signature(sig, primary, user_id), "user ID self-signature"
            )
            self.self_signatures.append((sig, user_id))
        # anything else (third-party certifications, direct-key signatures) Go passes over

    def _subkey_signature(self, subkey: _Subkey, sig: SignatureFields, primary: KeyFields) -> None:
        if sig.sig_type not in (_SIG_SUBKEY_BINDING, _SIG_SUBKEY_REVOCATION):
            raise _Refused(f"{_INVALID}: subkey signature with wrong type")
        sub = subkey.packet.key
        assert sub is not None  # unsupported key packets were refused on arrival
        _check(lambda: verify_key_signature(sig, primary, primary, sub), "subkey signature")
        if sig.key_flags is not None and sig.key_flags & _FLAG_SIGN:
            _check_back_signature(sig, primary, sub)
        if sig.sig_type == _SIG_SUBKEY_REVOCATION:
            subkey.revoked = True
            return
        if subkey.binding is None or (sig.created or 0) > (subkey.binding.created or 0):
            subkey.binding = sig

    def _primary_fields(self) -> KeyFields:
        if self.primary.key is None:
            raise _Refused(f"read armored key ring: {self.primary.unsupported or 'bad key'}")
        return self.primary.key

    def components(self) -> list[ComponentKey]:
        problem = self.refused
        if problem is None and any(s.binding is None and not s.revoked for s in self.subkeys):
            problem = f"{_INVALID}: subkey packet not followed by signature"
        if problem is None and not self.self_signatures:
            problem = f"{_INVALID}: entity without any identities"
        refused = problem is not None
        self_sig = _primary_self_signature(self.self_signatures)
        if problem is None and (self.revoked or (self_sig and self_sig.revocation_reason)):
            problem = _revoked(f"key {self.primary.key_id}")
        primary_expires = _expiry(self.primary.key, self_sig)
        found = [
            ComponentKey(
                self.primary.key_id,
                self.primary.key,
                _may_sign(self_sig),
                self.primary.key_id,
                problem,
                primary_expires,
                refused,
            )
        ]
        for sub in self.subkeys:
            sub_problem = problem
            revoked = sub.revoked or (sub.binding is not None and sub.binding.revocation_reason)
            if sub_problem is None and revoked:
                sub_problem = _revoked(f"subkey {sub.packet.key_id}")
            expires = [e for e in (_expiry(sub.packet.key, sub.binding), primary_expires) if e]
            found.append(
                ComponentKey(
                    sub.packet.key_id,
                    sub.packet.key,
                    _may_sign(sub.binding),
                    self.primary.key_id,
                    sub_problem,
                    min(expires, default=None),
                    refused,
                )
            )
        return found


def _check(verify, what: str) -> None:
    try:
        verify()
    except SignatureMathError as exc:
        raise _Refused(f"{_INVALID}: {what} invalid: {exc}") from None


def _check_back_signature(binding: SignatureFields, primary: KeyFields, sub: KeyFields) -> None:
    """Go: a binding that lets a subkey sign needs the subkey's own signature back."""
    if binding.embedded is None:
        raise _Refused(f"{_INVALID}: signing subkey is missing cross-signature")
    try:
        back = parse_signature(binding.embedded)
    except PacketError as exc:
        raise _Refused(f"read armored key ring: {exc}") from None
    if back.sig_type != _SIG_PRIMARY_KEY_BINDING:
        raise _Refused(f"{_INVALID}: cross-signature has unexpected type {back.sig_type}")
    _check(lambda: verify_key_signature(back, sub, primary, sub), "cross-signature")


def _primary_self_signature(
    signatures: Sequence[tuple[SignatureFields, bytes]],
) -> SignatureFields | None:
    """The primary user ID's self-signature: per user ID the last one in the file counts
    (Go keeps the last it verified), and the first user ID when none is marked primary
    (Go's map order makes its own choice there arbitrary)."""
    last: dict[bytes, SignatureFields] = {}
    for sig, user_id in signatures:
        last[user_id] = sig
    chosen = next((sig for sig in last.values() if sig.primary_user_id), None)
    return chosen or next(iter(last.values()), None)


def _may_sign(sig: SignatureFields | None) -> bool:
    return sig is None or sig.key_flags is None or bool(sig.key_flags & _FLAG_SIGN)


def _expiry(key: KeyFields | None, sig: SignatureFields | None) -> int | None:
    if key is None or sig is None or not sig.key_expires:
        return None
    return key.created + sig.key_expires


def _revoked(what: str) -> str:
    return f"openpgp: signature made by unknown entity ({what} is revoked)"
