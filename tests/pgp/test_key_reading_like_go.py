"""Key files and signature packets that Go's x/crypto/openpgp reads in its own way.

Each case is a crafted key file and detached signature. The expected verdict is Go's
(keys.go ReadEntity/addUserID/addSubkey, read.go CheckDetachedSignature, packet/signature.go
subpackets); every case also runs through the Go verifier built against Debian's
golang.org/x/crypto/openpgp, which must give that verdict. A signer that Go accepts is
accepted by fleetgap, and the reverse — except the one stricter rule written down below.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import craft
import pytest
import test_pgp_interop
from craft import (
    CERTIFY,
    ENCRYPT,
    SIGN,
    RsaKey,
    binding_signature,
    corrupt,
    key_packet,
    sign,
    signature_packet,
    sp_created,
    sp_issuer,
    sp_primary_uid,
    sp_revocation_reason,
    subkey_packet,
    user_id_packet,
    user_id_signature,
)

from fleetgap.pgp.keys import read_key_ring
from fleetgap.pgp.signatures import SignatureError, verify_bytes

goverify = test_pgp_interop.goverify  # the Go verifier fixture, built once per module

DATA = b"hello\n"


@dataclass(frozen=True)
class Trio:
    primary: RsaKey
    sub: RsaKey
    other: RsaKey


@pytest.fixture(scope="module")
def keys() -> Trio:
    return Trio(RsaKey.generate(), RsaKey.generate(), RsaKey.generate())


@dataclass(frozen=True)
class Case:
    build: Callable[[Trio], tuple[bytes, str]]  # -> (binary key packets, armored signature)
    go_verifies: bool
    reason: str = ""  # a phrase of fleetgap's error when it fails


def _base(k: Trio) -> bytes:
    return key_packet(k.primary) + user_id_packet() + signature_packet(user_id_signature(k.primary))


def _by_sub(cert: Callable[[Trio], bytes]) -> Callable[[Trio], tuple[bytes, str]]:
    return lambda k: (cert(k), craft.detached_signature(k.sub, DATA))


def _by_primary(cert: Callable[[Trio], bytes]) -> Callable[[Trio], tuple[bytes, str]]:
    return lambda k: (cert(k), craft.detached_signature(k.primary, DATA))


def _with_sub(*signatures: Callable[[Trio], bytes]) -> Callable[[Trio], bytes]:
    """The base key, the subkey, then these signatures after it."""

    def cert(k: Trio) -> bytes:
        sigs = b"".join(signature_packet(make(k)) for make in signatures)
        return _base(k) + subkey_packet(k.sub) + sigs

    return cert


def _signature(make: Callable[[Trio], list[bytes]]) -> Callable[[Trio], tuple[bytes, str]]:
    """The base key with a signing subkey, and a detached signature of these packets."""

    def build(k: Trio) -> tuple[bytes, str]:
        cert = (
            _base(k) + subkey_packet(k.sub) + signature_packet(binding_signature(k.primary, k.sub))
        )
        packets = b"".join(signature_packet(body) for body in make(k))
        return cert, craft.armor(packets, "PGP SIGNATURE")

    return build


def _asc(make: Callable[[Trio], bytes]) -> Callable[[Trio], tuple[bytes, str]]:
    """Like `_signature`, with the `.asc`'s packets given whole (any packet type)."""

    def build(k: Trio) -> tuple[bytes, str]:
        cert, _ = _signature(lambda _: [])(k)
        return cert, craft.armor(make(k), "PGP SIGNATURE")

    return build


def _good(k: Trio) -> bytes:
    return _detached(k.sub, [sp_created(NOW)], [sp_issuer(k.sub)])


def _with_algorithm(body: bytes, algorithm: int) -> bytes:
    """A signature body claiming another public-key algorithm (byte 2)."""
    return body[:2] + bytes([algorithm]) + body[3:]


def _unknown_key_body(algorithm: int) -> bytes:
    return bytes([4]) + craft.KEY_CREATED.to_bytes(4, "big") + bytes([algorithm]) + craft.mpi(7)


def _key_revocation(k: Trio, by: RsaKey | None = None) -> bytes:
    """A revocation of the primary key, with a reason, made by `by` (default: itself)."""
    return sign(
        by or k.primary,
        craft.SIG_KEY_REVOCATION,
        primary=k.primary,
        extra_hashed=[sp_revocation_reason()],
    )


def _revoked_ahead(k: Trio, by: RsaKey, broken: bool = False) -> bytes:
    """A key whose revocation (made by `by`, corrupted if `broken`) precedes its user ID."""
    revocation = _key_revocation(k, by)
    revocation = corrupt(revocation) if broken else revocation
    return (
        key_packet(k.primary)
        + signature_packet(revocation)
        + user_id_packet()
        + signature_packet(user_id_signature(k.primary))
    )


def _detached(key: RsaKey, hashed, unhashed, hash_algo: int = 10) -> bytes:
    return craft.detached_with(key, DATA, hashed, unhashed, hash_algo=hash_algo)


NOW = int(time.time())
LATER = craft.KEY_CREATED + 100
INVALID_SUBKEY_SIG = "subkey signature invalid"

CASES = {
    # subkeys: every signature after a subkey must be a binding or revocation that verifies
    "second-binding-corrupt": Case(
        _by_sub(
            _with_sub(
                lambda k: binding_signature(k.primary, k.sub),
                lambda k: corrupt(binding_signature(k.primary, k.sub, created=LATER)),
            )
        ),
        False,
        INVALID_SUBKEY_SIG,
    ),
    "first-binding-corrupt": Case(
        _by_sub(
            _with_sub(
                lambda k: corrupt(binding_signature(k.primary, k.sub)),
                lambda k: binding_signature(k.primary, k.sub, created=LATER),
            )
        ),
        False,
        INVALID_SUBKEY_SIG,
    ),
    "third-party-signature-on-subkey": Case(
        _by_sub(
            _with_sub(
                lambda k: binding_signature(k.primary, k.sub),
                lambda k: binding_signature(k.primary, k.sub, by=k.other),
            )
        ),
        False,
        INVALID_SUBKEY_SIG,
    ),
    "key-revocation-after-subkey": Case(
        _by_sub(
            _with_sub(
                lambda k: binding_signature(k.primary, k.sub),
                lambda k: _key_revocation(k),
            )
        ),
        False,
        "subkey signature with wrong type",
    ),
    "newest-binding-forbids-signing": Case(
        _by_sub(
            _with_sub(
                lambda k: binding_signature(k.primary, k.sub),
                lambda k: binding_signature(
                    k.primary, k.sub, flags=ENCRYPT, back=False, created=LATER
                ),
            )
        ),
        False,
        "unknown entity",
    ),
    "newest-binding-allows-signing-listed-first": Case(
        _by_sub(
            _with_sub(
                lambda k: binding_signature(k.primary, k.sub, created=LATER),
                lambda k: binding_signature(k.primary, k.sub, flags=ENCRYPT, back=False),
            )
        ),
        True,
    ),
    "back-signature-of-the-wrong-type": Case(
        _by_sub(
            _with_sub(
                lambda k: binding_signature(k.primary, k.sub, back_type=craft.SIG_SUBKEY_BINDING),
            )
        ),
        False,
        "cross-signature has unexpected type",
    ),
    "subkey-without-signature": Case(_by_primary(_with_sub()), False, "not followed by signature"),
    "binding-without-flags-needs-no-back-signature": Case(
        _by_sub(
            _with_sub(
                lambda k: sign(
                    k.primary, craft.SIG_SUBKEY_BINDING, primary=k.primary, subkey=k.sub
                ),
            )
        ),
        True,
    ),
    # user IDs: self-signatures by the primary must verify; the last one gives the flags
    "corrupt-user-id-self-signature": Case(
        _by_primary(
            lambda k: (
                _base(k) + signature_packet(corrupt(user_id_signature(k.primary, created=LATER)))
            )
        ),
        False,
        "user ID self-signature invalid",
    ),
    "no-identity": Case(
        _by_primary(
            lambda k: (
                key_packet(k.primary)
                + user_id_packet()
                + signature_packet(user_id_signature(k.primary, sig_type=0x12))
            )
        ),
        False,
        "entity without any identities",
    ),
    "self-signature-without-issuer-does-not-count": Case(
        _by_primary(
            lambda k: (
                key_packet(k.primary)
                + user_id_packet()
                + signature_packet(user_id_signature(k.primary, issuer=False))
            )
        ),
        False,
        "entity without any identities",
    ),
    "last-self-signature-gives-the-flags": Case(
        _by_primary(
            lambda k: (
                key_packet(k.primary)
                + user_id_packet()
                + signature_packet(user_id_signature(k.primary, flags=CERTIFY, created=LATER))
                + signature_packet(user_id_signature(k.primary, flags=CERTIFY | SIGN))
            )
        ),
        True,
    ),
    "last-self-signature-takes-the-flags-away": Case(
        _by_primary(
            lambda k: (
                key_packet(k.primary)
                + user_id_packet()
                + signature_packet(
                    user_id_signature(k.primary, flags=CERTIFY | SIGN, created=LATER)
                )
                + signature_packet(user_id_signature(k.primary, flags=CERTIFY))
            )
        ),
        False,
        "unknown entity",
    ),
    "primary-user-id-gives-the-flags": Case(
        _by_primary(
            lambda k: (
                key_packet(k.primary)
                + user_id_packet("a <a@example.org>")
                + signature_packet(
                    user_id_signature(k.primary, "a <a@example.org>", extra=[sp_primary_uid()])
                )
                + user_id_packet("b <b@example.org>")
                + signature_packet(
                    user_id_signature(k.primary, "b <b@example.org>", flags=CERTIFY, created=LATER)
                )
            )
        ),
        True,
    ),
    "direct-key-signature-does-not-give-flags": Case(
        _by_primary(
            lambda k: (
                key_packet(k.primary)
                + signature_packet(
                    sign(
                        k.primary,
                        0x1F,
                        created=LATER,
                        primary=k.primary,
                        extra_hashed=[craft.sp_key_flags(CERTIFY | SIGN)],
                    )
                )
                + user_id_packet()
                + signature_packet(user_id_signature(k.primary, flags=CERTIFY))
            )
        ),
        False,
        "unknown entity",
    ),
    # revocations
    "corrupt-key-revocation": Case(
        _by_primary(lambda k: _revoked_ahead(k, k.primary, broken=True)),
        False,
        "revocation signature invalid",
    ),
    "key-revocation-by-another-key": Case(
        _by_primary(lambda k: _revoked_ahead(k, k.other)),
        False,
        "revocation signature invalid",
    ),
    "key-revocation-after-a-user-id-is-not-one": Case(
        _by_primary(lambda k: _base(k) + signature_packet(_key_revocation(k))),
        True,
    ),
    # detached signature packets
    "last-issuer-subpacket-counts": Case(
        _signature(
            lambda k: [_detached(k.sub, [sp_created(NOW)], [sp_issuer(k.sub), sp_issuer(k.other)])]
        ),
        False,
        "unknown entity",
    ),
    "unhashed-issuer-after-a-hashed-one": Case(
        _signature(
            lambda k: [_detached(k.sub, [sp_created(NOW), sp_issuer(k.other)], [sp_issuer(k.sub)])]
        ),
        True,
    ),
    "no-creation-time": Case(
        _signature(lambda k: [_detached(k.sub, [], [sp_issuer(k.sub)])]),
        False,
        "no creation time in signature",
    ),
    "creation-time-in-the-unhashed-area": Case(
        _signature(lambda k: [_detached(k.sub, [], [sp_created(NOW), sp_issuer(k.sub)])]),
        False,
        "signature creation time in non-hashed area",
    ),
    "unknown-critical-subpacket": Case(
        _signature(
            lambda k: [_detached(k.sub, [sp_created(NOW), (0x80 | 100, b"x")], [sp_issuer(k.sub)])]
        ),
        False,
        "unknown critical signature subpacket type 100",
    ),
    "unknown-subpacket-not-critical": Case(
        _signature(
            lambda k: [_detached(k.sub, [sp_created(NOW), (100, b"x")], [sp_issuer(k.sub)])]
        ),
        True,
    ),
    "first-signature-by-an-unknown-key-is-passed-over": Case(
        _signature(
            lambda k: [
                _detached(k.other, [sp_created(NOW)], [sp_issuer(k.other)]),
                _detached(k.sub, [sp_created(NOW)], [sp_issuer(k.sub)]),
            ]
        ),
        True,
    ),
    "first-signature-by-the-key-decides": Case(
        _signature(
            lambda k: [
                corrupt(_detached(k.sub, [sp_created(NOW)], [sp_issuer(k.sub)])),
                _detached(k.sub, [sp_created(NOW)], [sp_issuer(k.sub)]),
            ]
        ),
        False,
        "verification failure",
    ),
    "unsupported-hash": Case(
        _signature(
            lambda k: [
                _detached(k.sub, [sp_created(NOW)], [sp_issuer(k.sub)])[:3]
                + bytes([99])
                + _detached(k.sub, [sp_created(NOW)], [sp_issuer(k.sub)])[4:]
            ]
        ),
        False,
        "hash function 99",
    ),
    # reading hostile input: every case below once crashed fleetgap or differed from Go
    "issuer-fingerprint-of-an-unknown-version": Case(
        _signature(
            lambda k: [
                _detached(k.sub, [sp_created(NOW), (33, b"\x68" + bytes(20))], [sp_issuer(k.sub)])
            ]
        ),
        True,
    ),
    "literal-packet-before-the-signature": Case(
        _asc(
            lambda k: craft.packet(11, b"b\x00\x00\x00\x00\x00" + DATA) + signature_packet(_good(k))
        ),
        False,
        "non signature packet found",
    ),
    "private-packet-type-before-the-signature": Case(
        _asc(lambda k: craft.packet(60, b"private") + signature_packet(_good(k))),
        True,
    ),
    "trust-packet-between-user-id-and-self-signature": Case(
        _by_primary(
            lambda k: (
                key_packet(k.primary)
                + user_id_packet()
                + craft.packet(12, b"\x00")
                + signature_packet(user_id_signature(k.primary))
            )
        ),
        True,
    ),
    "rsa-sign-only-signature-by-an-rsa-key": Case(
        _signature(lambda k: [_with_algorithm(_good(k), 3)]),
        False,
        "different algorithms",
    ),
    "truncated-signature-value": Case(
        _signature(lambda k: [_good(k)[:-20]]),
        False,
        "unexpected EOF",
    ),
    "eddsa-signature-claimed-first": Case(
        _signature(
            lambda k: [
                _with_algorithm(_detached(k.other, [sp_created(NOW)], [sp_issuer(k.other)]), 22),
                _good(k),
            ]
        ),
        False,
        "public key algorithm 22",
    ),
    "embedded-signature-that-is-not-a-back-signature": Case(
        _signature(
            lambda k: [
                _detached(
                    k.sub,
                    [
                        sp_created(NOW),
                        craft.sp_embedded_signature(
                            sign(k.primary, 0x13, primary=k.primary, uid=craft.DEFAULT_UID)
                        ),
                    ],
                    [sp_issuer(k.sub)],
                )
            ]
        ),
        False,
        "cross-signature has unexpected type 19",
    ),
    "primary-user-id-subpacket-of-two-bytes": Case(
        _signature(
            lambda k: [_detached(k.sub, [sp_created(NOW), (25, b"\x01\x01")], [sp_issuer(k.sub)])]
        ),
        False,
        "primary user id subpacket with bad length",
    ),
    "empty-key-flags-in-the-unhashed-area-are-ignored": Case(
        _signature(lambda k: [_detached(k.sub, [sp_created(NOW)], [sp_issuer(k.sub), (27, b"")])]),
        True,
    ),
    "self-signature-with-a-revocation-reason": Case(
        _by_primary(
            lambda k: (
                key_packet(k.primary)
                + user_id_packet()
                + signature_packet(user_id_signature(k.primary, extra=[sp_revocation_reason()]))
            )
        ),
        False,
        "unknown entity",
    ),
    "key-revocation-after-a-user-attribute": Case(
        _by_primary(
            lambda k: (
                _base(k)
                + craft.packet(17, b"\x05\x01attribute")
                + signature_packet(_key_revocation(k))
            )
        ),
        False,
        "unknown entity",
    ),
    "third-party-eddsa-certification": Case(
        _by_primary(
            lambda k: (
                _base(k)
                + signature_packet(
                    _with_algorithm(
                        sign(k.other, 0x10, primary=k.primary, uid=craft.DEFAULT_UID), 22
                    )
                )
            )
        ),
        False,
        "public key algorithm 22",
    ),
    "subkey-of-an-unknown-algorithm": Case(
        _by_primary(
            lambda k: _base(k) + craft.packet(craft.TAG_PUBLIC_SUBKEY, _unknown_key_body(100))
        ),
        False,
        "public key type: 100",
    ),
    "same-key-twice-the-first-revoked": Case(
        _by_primary(lambda k: _revoked_ahead(k, k.primary) + _base(k)),
        True,
    ),
}


@pytest.mark.parametrize("name", CASES)
def test_fleetgap_reads_it_as_go_does(keys: Trio, name: str) -> None:
    case = CASES[name]
    cert, signature = case.build(keys)
    key = read_key_ring(craft.armor_public(cert))
    if case.go_verifies:
        assert verify_bytes(DATA, signature.encode(), [key]) is key
    else:
        with pytest.raises(SignatureError) as failed:
            verify_bytes(DATA, signature.encode(), [key])
        assert case.reason in str(failed.value)


@pytest.mark.parametrize("name", CASES)
def test_go_gives_that_verdict(goverify: Path, keys: Trio, tmp_path: Path, name: str) -> None:
    case = CASES[name]
    cert, signature = case.build(keys)
    assert _go(goverify, tmp_path, cert, signature) == case.go_verifies


def test_a_revoked_subkey_never_signs_though_go_needs_a_reason(
    goverify: Path, keys: Trio, tmp_path: Path
) -> None:
    """The one rule stricter than Go: Go ignores a subkey revocation without a reason
    subpacket; fleetgap refuses the subkey's signatures all the same."""
    k = keys
    revocation = sign(k.primary, craft.SIG_SUBKEY_REVOCATION, primary=k.primary, subkey=k.sub)
    cert = _with_sub(lambda _: binding_signature(k.primary, k.sub), lambda _: revocation)(k)
    signature = craft.detached_signature(k.sub, DATA)
    assert _go(goverify, tmp_path, cert, signature) is True
    with pytest.raises(SignatureError, match="is revoked"):
        verify_bytes(DATA, signature.encode(), [read_key_ring(craft.armor_public(cert))])


def _go(goverify: Path, folder: Path, cert: bytes, signature: str) -> bool:
    (folder / "key.asc").write_text(craft.armor_public(cert))
    (folder / "data").write_bytes(DATA)
    (folder / "data.asc").write_text(signature)
    result = subprocess.run(
        [goverify, folder / "data", folder / "data.asc", folder / "key.asc"],
        capture_output=True,
        text=True,
    )
    return result.returncode == 0
