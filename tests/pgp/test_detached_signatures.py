"""Detached signatures: made by fleetgap, checked with Go's x/crypto/openpgp semantics."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pysequoia
import pytest
from pysequoia.packet import PacketPile, Tag

from fleetgap.artifacts.agent_upgrade import check_signature_blobs
from fleetgap.pgp.keys import (
    ELASTIC_FINGERPRINT,
    KeyFileError,
    SecretKey,
    parse_public_key,
    read_key_ring,
    read_public_key,
)
from fleetgap.pgp.packets import parse_key
from fleetgap.pgp.signatures import (
    UNKNOWN_ENTITY,
    SignatureError,
    sign_bytes,
    sign_file,
    verify_bytes,
    verify_file,
)

DROP_FILE = "elastic-agent-8.0.0-darwin-x86_64.tar.gz"

TEST_KEY_FINGERPRINT = "F356B8E790E87390D67B139C1787BA7B3E2BAB30"


def _case_bytes(ref: str, derived: Path) -> bytes:
    if ref.startswith("inline:"):
        return ref[len("inline:") :].encode().decode("unicode_escape").encode()
    return (derived / ref).read_bytes()


def test_every_derived_signature_case_gets_the_agents_outcome(
    pgp_case: dict, compat: Path, tmp_path: Path
) -> None:
    derived = compat / "elastic-agent" / "derived"
    package = tmp_path / DROP_FILE
    package.write_bytes(_case_bytes(pgp_case["data"], derived))
    asc = _case_bytes(pgp_case["signature"], derived)
    refs = pgp_case["keys_in_order"]
    blobs = [(f"key{i}", _case_bytes(ref, derived)) for i, ref in enumerate(refs)]
    verdict = check_signature_blobs(package, asc, blobs)
    # "fail (>=8.12) / pass (<=8.11 http verifier)": fleetgap follows the current agent
    assert verdict.passed is pgp_case["expected"].startswith("pass")
    if verdict.passed:
        last = len(blobs) - 1
        assert verdict.log[-1] == f"Verification with PGP[{last}] successful"
        assert verdict.verified_by.endswith(TEST_KEY_FINGERPRINT)
    else:
        assert verdict.error.startswith(
            f'failed verification of agent binary: could not verify PGP signature of "{package}"'
        )


def test_derived_failure_reasons_use_the_agents_words(drop: Path, elastic_key_file: Path) -> None:
    package = drop / DROP_FILE
    asc = (drop / f"{DROP_FILE}.asc").read_bytes()
    elastic = check_signature_blobs(package, asc, [("e", elastic_key_file.read_bytes())])
    assert elastic.error.endswith(UNKNOWN_ENTITY)
    garbage = check_signature_blobs(package, asc, [("g", b"garbage")])
    assert "read armored key ring" in garbage.error
    nothing = check_signature_blobs(package, asc, [])
    assert nothing.error.endswith("%!w(<nil>)")
    assert "No PGP key available, skipping verification process" in nothing.log[0]


def test_agent_test_vector_verifies_with_its_own_key(drop: Path) -> None:
    key = read_public_key(drop / "public-key.pgp")
    asc = (drop / f"{DROP_FILE}.asc").read_bytes()
    assert verify_file(drop / DROP_FILE, asc, [key]).fingerprint == TEST_KEY_FINGERPRINT


def test_agent_test_vector_fails_with_the_elastic_key(drop: Path, elastic_key_file: Path) -> None:
    elastic = read_public_key(elastic_key_file)
    asc = (drop / f"{DROP_FILE}.asc").read_bytes()
    with pytest.raises(SignatureError, match="unknown entity"):
        verify_file(drop / DROP_FILE, asc, [elastic])


def test_agent_test_vector_fails_after_a_one_byte_change(drop: Path, tmp_path: Path) -> None:
    key = read_public_key(drop / "public-key.pgp")
    data = bytearray((drop / DROP_FILE).read_bytes())
    data[0] ^= 0x01
    changed = tmp_path / DROP_FILE
    changed.write_bytes(bytes(data))
    with pytest.raises(SignatureError, match="invalid signature"):
        verify_file(changed, (drop / f"{DROP_FILE}.asc").read_bytes(), [key])


def test_keys_are_tried_in_order_and_the_first_that_verifies_is_returned(
    drop: Path, elastic_key_file: Path
) -> None:
    elastic = read_public_key(elastic_key_file)
    test_key = read_public_key(drop / "public-key.pgp")
    asc = (drop / f"{DROP_FILE}.asc").read_bytes()
    assert verify_file(drop / DROP_FILE, asc, [elastic, test_key]) is test_key


def test_elastic_key_is_read_with_its_pinned_fingerprint(elastic_key_file: Path) -> None:
    key = read_public_key(elastic_key_file)
    assert key.fingerprint == ELASTIC_FINGERPRINT
    assert key.key_id == "D27D666CD88E42B4"
    assert key.weak_self_signatures  # SHA-1 self-signatures: pysequoia refuses it, Go does not


def test_go_reads_only_the_first_armored_block_but_a_trusted_key_file_holds_one(
    drop: Path, elastic_key_file: Path
) -> None:
    both = elastic_key_file.read_bytes() + (drop / "public-key.pgp").read_bytes()
    assert read_key_ring(both).fingerprint == ELASTIC_FINGERPRINT
    with pytest.raises(KeyFileError, match="holds 2 armored blocks"):
        parse_public_key(both)


def test_unarmored_or_wrong_block_is_not_a_key(drop: Path) -> None:
    with pytest.raises(KeyFileError, match="read armored key ring: no armored data found"):
        parse_public_key(b"garbage")
    with pytest.raises(KeyFileError, match="expected public or private key block, got: PGP SIG"):
        parse_public_key((drop / f"{DROP_FILE}.asc").read_bytes())


def test_signature_must_be_armored(drop: Path) -> None:
    key = read_public_key(drop / "public-key.pgp")
    with pytest.raises(SignatureError, match="invalid signature"):
        verify_bytes(b"data", b"bad sig", [key])


def test_sign_file_writes_an_armored_detached_signature_that_verifies(
    signing_key: SecretKey, tmp_path: Path
) -> None:
    path = tmp_path / "artifact.tar.gz"
    path.write_bytes(b"payload" * 1000)
    asc = sign_file(path, signing_key)
    assert asc == tmp_path / "artifact.tar.gz.asc"
    assert asc.read_text().startswith("-----BEGIN PGP SIGNATURE-----")
    assert verify_file(path, asc.read_bytes(), [signing_key.public_key]).fingerprint == (
        signing_key.fingerprint
    )


def test_fleetgap_signature_fails_for_another_key_and_for_changed_data(
    signing_key: SecretKey, other_key: SecretKey
) -> None:
    signature = sign_bytes(b"payload", signing_key)
    assert verify_bytes(b"payload", signature, [other_key.public_key, signing_key.public_key])
    with pytest.raises(SignatureError, match="unknown entity"):
        verify_bytes(b"payload", signature, [other_key.public_key])
    with pytest.raises(SignatureError, match="invalid signature"):
        verify_bytes(b"payload!", signature, [signing_key.public_key])


def test_sign_file_to_an_explicit_path(signing_key: SecretKey, tmp_path: Path) -> None:
    path = tmp_path / "pkg.zip"
    path.write_bytes(b"zip")
    out = sign_file(path, signing_key, tmp_path / "pkg.zip.sig")
    assert out.name == "pkg.zip.sig"
    assert verify_file(path, out.read_bytes(), [signing_key.public_key])


def test_generated_keys_are_v4_rsa_4096(signing_key: SecretKey) -> None:
    packets = [p for p in PacketPile.from_bytes(signing_key.armored.encode())]
    keys = [p for p in packets if p.tag in (Tag.SecretKey, Tag.SecretSubkey)]
    assert keys
    for packet in keys:
        fields = parse_key(bytes(packet.body))
        assert fields.pk_algo == 1  # RSA
        assert int.from_bytes(fields.mpis[0], "big").bit_length() == 4096


def test_eddsa_keys_are_refused_with_the_reason() -> None:
    eddsa = pysequoia.Tsk.generate("eddsa <e@example.org>")  # pysequoia's default: Cv25519
    with pytest.raises(KeyFileError, match="refusing to sign.*Go x/crypto/openpgp"):
        SecretKey.parse(str(eddsa).encode())


def test_ecdsa_on_a_nist_curve_is_accepted() -> None:
    nist = pysequoia.Tsk.generate("p256 <p@example.org>", cipher_suite=pysequoia.CipherSuite.P256)
    assert SecretKey.parse(str(nist).encode()).fingerprint


def test_public_key_is_not_a_signing_key(signing_key: SecretKey) -> None:
    with pytest.raises(KeyFileError, match="not a secret key"):
        SecretKey.parse(signing_key.public_key.armored.encode())


def test_secret_key_round_trips_through_files(signing_key: SecretKey, tmp_path: Path) -> None:
    secret, public = tmp_path / "k.sec", tmp_path / "k.pub"
    signing_key.write(secret, public)
    assert secret.stat().st_mode & 0o777 == 0o600
    assert SecretKey.read(secret).fingerprint == signing_key.fingerprint
    assert read_public_key(public).fingerprint == signing_key.fingerprint


@pytest.fixture(scope="module", params=["rsa2048", "dsa1024"])
def sha1_signed(request, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """A GnuPG key whose self-signatures use SHA-1 (like Elastic's), and a file it signed."""
    folder = tmp_path_factory.mktemp("sha1")
    home = folder / "gnupg"
    home.mkdir(mode=0o700)
    gpg = ["gpg", "--homedir", str(home), "--batch", "--quiet", "--pinentry-mode", "loopback"]
    try:
        subprocess.run(
            [*gpg, "--cert-digest-algo", "SHA1", "--passphrase", ""]
            + ["--quick-gen-key", "sha1 self-sig <s@example.org>", request.param, "sign", "never"],
            check=True,
            capture_output=True,
        )
        data = folder / "artifact.tar.gz"
        data.write_bytes(b"signed by a SHA-1 self-signed key\n" * 100)
        subprocess.run(
            [*gpg, "--digest-algo", "SHA512", "--armor", "--detach-sign", str(data)],
            check=True,
            capture_output=True,
        )
        public = folder / "key.asc"
        exported = subprocess.run([*gpg, "--armor", "--export"], check=True, capture_output=True)
        public.write_bytes(exported.stdout)
    finally:
        subprocess.run(["gpgconf", "--homedir", str(home), "--kill", "all"], capture_output=True)
    return data, Path(f"{data}.asc"), public


def test_key_with_sha1_self_signatures_verifies_like_in_go(sha1_signed) -> None:
    data, asc, public = sha1_signed
    key = read_public_key(public)
    assert key.weak_self_signatures
    assert verify_file(data, asc.read_bytes(), [key]) is key


def test_key_with_sha1_self_signatures_rejects_changed_data(sha1_signed) -> None:
    data, asc, public = sha1_signed
    with pytest.raises(SignatureError, match="invalid signature"):
        verify_bytes(data.read_bytes() + b"x", asc.read_bytes(), [read_public_key(public)])


def test_ecdsa_primary_key_signature_verifies(tmp_path: Path) -> None:
    """A P-256 key (what Go reads besides RSA and DSA) signing with its primary key."""
    home = tmp_path / "gnupg"
    home.mkdir(mode=0o700)
    gpg = ["gpg", "--homedir", str(home), "--batch", "--quiet", "--pinentry-mode", "loopback"]
    data = tmp_path / "payload"
    data.write_bytes(b"payload")
    try:
        subprocess.run(
            [*gpg, "--passphrase", "", "--quick-gen-key", "p256 <p@example.org>"]
            + ["nistp256", "sign", "never"],
            check=True,
            capture_output=True,
        )
        subprocess.run([*gpg, "--armor", "--detach-sign", str(data)], check=True)
        exported = subprocess.run([*gpg, "--armor", "--export"], check=True, capture_output=True)
    finally:
        subprocess.run(["gpgconf", "--homedir", str(home), "--kill", "all"], capture_output=True)
    key = parse_public_key(exported.stdout)
    signature = Path(f"{data}.asc").read_bytes()
    assert verify_bytes(b"payload", signature, [key]) is key
    with pytest.raises(SignatureError, match="invalid signature"):
        verify_bytes(b"payload?", signature, [key])


def test_signature_by_a_bound_signing_subkey_verifies() -> None:
    """pysequoia signs with the signing subkey; its binding and back-signature verify."""
    tsk = pysequoia.Tsk.generate("rsa <r@example.org>", cipher_suite=pysequoia.CipherSuite.RSA2k)
    key = SecretKey.parse(str(tsk).encode())
    public = key.public_key
    signature = sign_bytes(b"payload", key)
    assert verify_bytes(b"payload", signature, [public]) is public
    with pytest.raises(SignatureError, match="hash tag doesn't match"):
        verify_bytes(b"payload!", signature, [public])


def test_one_byte_change_fails_on_the_hash_tag_like_go(drop: Path) -> None:
    key = read_public_key(drop / "public-key.pgp")
    asc = (drop / f"{DROP_FILE}.asc").read_bytes()
    with pytest.raises(SignatureError, match="hash tag doesn't match"):
        verify_bytes((drop / DROP_FILE).read_bytes() + b"!", asc, [key])
