"""Which keys may sign: fleetgap gives the verdicts of Go's x/crypto/openpgp (the agent).

Each case is a key crafted packet by packet (craft.py) and a detached signature. The
expected verdicts are Go's documented behaviour (keys.go, read.go), and every case is
also run through the Go verifier built against Debian's golang.org/x/crypto/openpgp:
fleetgap must agree with it case for case.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import craft
import pytest
import test_pgp_interop
from craft import Keys, SubkeySpec

from fleetgap.pgp.keys import parse_public_key
from fleetgap.pgp.packets import SignatureFields
from fleetgap.pgp.signature_math import DataDigest
from fleetgap.pgp.signatures import SignatureError, verify_bytes

goverify = test_pgp_interop.goverify  # the Go verifier fixture, built once per module

DATA = b"elastic-agent-9.1.0-linux-x86_64.tar.gz\nsecond line\r\nthird\n"


@pytest.fixture(scope="module")
def keys() -> Keys:
    return Keys.generate()


@dataclass(frozen=True)
class Case:
    cert: Callable[[Keys], bytes]
    signer: Callable[[Keys], craft.Key]
    verifies: bool
    reason: str = ""  # a phrase of Go's error that fleetgap's reason must contain
    signature: dict | None = None  # detached_signature options
    data: bytes = DATA


def _rsa(**spec: object) -> Callable[[Keys], bytes]:
    def build(keys: Keys) -> bytes:
        given = {k: (keys.other if v == "other" else v) for k, v in spec.items()}
        return craft.build_cert(keys.primary, subkeys=[SubkeySpec(keys.sub, **given)])

    return build


def _sub(keys: Keys) -> craft.Key:
    return keys.sub


def _primary(keys: Keys) -> craft.Key:
    return keys.primary


BAD_BINDING = "subkey signature invalid"
CASES = {
    "bound-signing-subkey": Case(_rsa(), _sub, True),
    "primary-key": Case(_rsa(), _primary, True),
    "ecdsa-subkey": Case(
        lambda k: craft.build_cert(k.ec_primary, subkeys=[SubkeySpec(k.ec_sub)]),
        lambda k: k.ec_sub,
        True,
    ),
    "sha256-data-signature": Case(_rsa(), _sub, True, signature={"hash_algo": 8}),
    "sha1-data-signature": Case(_rsa(), _sub, True, signature={"hash_algo": 2}),
    "text-signature": Case(_rsa(), _sub, True, signature={"sig_type": craft.SIG_TEXT}),
    "text-signature-over-bare-carriage-returns": Case(
        _rsa(), _sub, True, signature={"sig_type": craft.SIG_TEXT}, data=b"a\r\r\nb\r\rc\n\r"
    ),
    "sha1-self-signatures": Case(
        lambda k: craft.build_cert(k.primary, subkeys=[SubkeySpec(k.sub)], self_sig_hash=2),
        _sub,
        True,
    ),
    "expired-subkey": Case(_rsa(expires=60), _sub, True),  # Go does not check expiry
    "expired-primary": Case(
        lambda k: craft.build_cert(k.primary, subkeys=[SubkeySpec(k.sub)], primary_expires=60),
        _primary,
        True,
    ),
    "subkey-bound-by-another-key": Case(_rsa(binding_by="other"), _sub, False, BAD_BINDING),
    "primary-of-a-key-with-a-bad-binding": Case(
        _rsa(binding_by="other"), _primary, False, BAD_BINDING
    ),
    "signing-subkey-without-cross-signature": Case(
        _rsa(cross_sig=False), _sub, False, "missing cross-signature"
    ),
    "corrupt-binding": Case(_rsa(corrupt_binding=True), _sub, False, BAD_BINDING),
    "encrypt-only-subkey-with-bad-binding": Case(
        _rsa(binding_by="other", flags=craft.ENCRYPT), _primary, False, BAD_BINDING
    ),
    "encryption-subkey-signing": Case(
        _rsa(flags=craft.ENCRYPT), _sub, False, "signature made by unknown entity"
    ),
    "revoked-subkey": Case(_rsa(revoked=True), _sub, False, "signature made by unknown entity"),
    "revoked-primary": Case(
        lambda k: craft.build_cert(k.primary, subkeys=[SubkeySpec(k.sub)], revoked=True),
        _sub,
        False,
        "signature made by unknown entity",
    ),
    "certify-only-primary": Case(
        lambda k: craft.build_cert(k.primary, primary_flags=craft.CERTIFY),
        _primary,
        False,
        "signature made by unknown entity",
    ),
    "unknown-signer": Case(_rsa(), lambda k: k.other, False, "signature made by unknown entity"),
    "no-issuer": Case(_rsa(), _sub, False, "issuer", signature={"issuer": False}),
}


def _material(case: Case, keys: Keys) -> tuple[str, str]:
    armored_key = craft.armor_public(case.cert(keys))
    signature = craft.detached_signature(case.signer(keys), case.data, **(case.signature or {}))
    return armored_key, signature


@pytest.mark.parametrize("name", CASES)
def test_fleetgap_gives_gos_verdict(keys: Keys, name: str) -> None:
    case = CASES[name]
    armored_key, signature = _material(case, keys)
    key = parse_public_key(armored_key)
    if case.verifies:
        assert verify_bytes(case.data, signature.encode(), [key]) is key
        with pytest.raises(SignatureError, match="invalid signature"):
            verify_bytes(case.data + b"!", signature.encode(), [key])
    else:
        with pytest.raises(SignatureError) as failed:
            verify_bytes(case.data, signature.encode(), [key])
        assert case.reason in str(failed.value)


@pytest.mark.parametrize("name", CASES)
def test_go_gives_the_same_verdict(goverify: Path, keys: Keys, tmp_path: Path, name: str) -> None:
    case = CASES[name]
    armored_key, signature = _material(case, keys)
    (tmp_path / "key.asc").write_text(armored_key)
    (tmp_path / "data").write_bytes(case.data)
    (tmp_path / "data.asc").write_text(signature)
    result = subprocess.run(
        [goverify, tmp_path / "data", tmp_path / "data.asc", tmp_path / "key.asc"],
        capture_output=True,
        text=True,
    )
    assert (result.returncode == 0) == case.verifies, result.stdout
    assert case.reason in result.stdout


def test_key_standing_is_shown_per_component(keys: Keys) -> None:
    key = parse_public_key(craft.armor_public(_rsa(revoked=True, expires=60)(keys)))
    primary, sub = key.components
    assert (primary.key_id, primary.unusable) == (keys.primary.key_id, None)
    assert sub.key_id == keys.sub.key_id and "revoked" in (sub.unusable or "")
    assert sub.expires == keys.sub.created + 60


@pytest.mark.parametrize("sig_type", [craft.SIG_BINARY, craft.SIG_TEXT])
def test_data_digest_is_the_same_however_the_data_is_chunked(sig_type: int) -> None:
    """A download arrives in chunks of any size: a CR at a chunk's end must still let the
    next chunk's first byte pass, as in one piece."""
    data = b"\r\r\n\n\r\na\rb\r\r\r\nc\n\r"
    fields = SignatureFields(4, sig_type, 1, 10, b"", None, None, b"", ())
    whole = DataDigest(fields)
    whole.update(data)
    for cut in range(len(data) + 1):
        for second in range(cut, len(data) + 1):
            split = DataDigest(fields)
            for piece in (data[:cut], data[cut:second], data[second:]):
                split.update(piece)
            assert split.state.digest() == whole.state.digest(), (cut, second)
    if sig_type == craft.SIG_TEXT:
        expected = DataDigest(SignatureFields(4, craft.SIG_BINARY, 1, 10, b"", None, None, b"", ()))
        expected.update(craft.canonical_text(data))
        assert whole.state.digest() == expected.state.digest()
