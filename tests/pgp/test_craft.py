"""craft.py writes OpenPGP that independent implementations read the same way: GnuPG,
Sequoia (pysequoia) and Go's golang.org/x/crypto/openpgp (via goverify/)."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import craft
import pysequoia
import pytest
import test_pgp_interop
from craft import Keys, SubkeySpec

# the Go verifier fixture, built once per module as test_pgp_interop.py builds it
goverify = test_pgp_interop.goverify

DATA = b"elastic-agent-9.1.0-linux-x86_64.tar.gz contents\n"


@pytest.fixture(scope="module")
def keys() -> Keys:
    return Keys.generate()


def _cert(keys: Keys, **spec: object) -> bytes:
    """The RSA primary with the RSA signing subkey, its SubkeySpec changed by `spec`."""
    return craft.build_cert(keys.primary, subkeys=[SubkeySpec(keys.sub, **spec)])


# --- framing and identity, checked against the RFC and Sequoia ---------------------------


def test_packet_lengths_are_the_rfc_4880_examples() -> None:
    # RFC 4880 §4.2.3: 100 -> 0x64, 1723 -> 0xC5 0xFB, 100000 -> 0xFF 0x000186A0
    assert craft.packet(13, b"x" * 100)[:2] == b"\xcd\x64"
    assert craft.packet(13, b"x" * 1723)[:3] == b"\xcd\xc5\xfb"
    assert craft.packet(13, b"x" * 100000)[:6] == b"\xcd\xff\x00\x01\x86\xa0"
    assert craft.packet(2, b"x" * 191)[1] == 191
    assert craft.packet(2, b"x" * 192)[1:3] == b"\xc0\x00"
    assert craft.packet(2, b"x" * 8383)[1:3] == b"\xdf\xff"
    assert craft.packet(2, b"x" * 8384)[1:6] == b"\xff\x00\x00\x20\xc0"
    assert craft.packet(6, b"abc", length_form=5) == b"\xc6\xff\x00\x00\x00\x03abc"


def test_armor_is_what_sequoia_writes(keys: Keys) -> None:
    cert = _cert(keys)
    assert craft.armor_public(cert) == pysequoia.armor(cert, pysequoia.ArmorKind.PublicKey)
    assert craft.armor(b"hi", "PGP SIGNATURE") == pysequoia.armor(
        b"hi", pysequoia.ArmorKind.Signature
    )


@pytest.mark.parametrize("which", ["primary", "ec_primary"])
def test_sequoia_reads_the_key_with_the_same_fingerprint(keys: Keys, which: str) -> None:
    primary = getattr(keys, which)
    armored = craft.armor_public(craft.build_cert(primary, uid="someone <s@example.org>"))
    cert = pysequoia.Cert.from_bytes(armored.encode())
    assert cert.fingerprint.upper() == primary.fingerprint
    assert primary.key_id == primary.fingerprint[-16:]
    assert [str(u) for u in cert.user_ids] == ["someone <s@example.org>"]
    assert not cert.is_revoked


def test_a_five_octet_length_user_id_is_read(keys: Keys) -> None:
    uid = "five octets <f@example.org>"
    primary = keys.primary
    self_sig = craft.sign(
        primary,
        craft.SIG_POSITIVE_CERT,
        primary=primary,
        uid=uid,
        extra_hashed=[craft.sp_key_flags(craft.CERTIFY | craft.SIGN)],
    )
    cert = (
        craft.packet(craft.TAG_PUBLIC_KEY, primary.packet_body, length_form=5)
        + craft.packet(craft.TAG_USER_ID, uid.encode(), length_form=5)
        + craft.packet(craft.TAG_SIGNATURE, self_sig, length_form=5)
    )
    parsed = pysequoia.Cert.from_bytes(craft.armor_public(cert).encode())
    assert [str(u) for u in parsed.user_ids] == [uid]


def test_sequoia_sees_revocation_and_expiry(keys: Keys) -> None:
    revoked = craft.build_cert(keys.primary, revoked=True)
    assert pysequoia.Cert.from_bytes(revoked).is_revoked
    expiring = pysequoia.Cert.from_bytes(craft.build_cert(keys.primary, primary_expires=86400))
    assert expiring.expiration is not None
    assert int(expiring.expiration.timestamp()) == keys.primary.created + 86400


# --- Sequoia verifies subkey signatures only with a proper binding -----------------------


def _sequoia_verifies(cert_bytes: bytes, signature: str, data: bytes = DATA) -> bool:
    cert = pysequoia.Cert.from_bytes(craft.armor_public(cert_bytes).encode())
    sig = pysequoia.Sig.from_bytes(signature.encode())
    try:
        result = pysequoia.verify(bytes=data, signature=sig, store=lambda ids: [cert])
    except RuntimeError as error:
        assert "no valid signatures" in str(error)
        return False
    assert [s.certificate for s in result.valid_sigs] == [cert.fingerprint]
    return True


@pytest.mark.parametrize("hash_algo", [8, 10])
def test_sequoia_verifies_a_cross_signed_subkey_signature(keys: Keys, hash_algo: int) -> None:
    signature = craft.detached_signature(keys.sub, DATA, hash_algo=hash_algo)
    assert pysequoia.Sig.from_bytes(signature.encode()).issuer_fingerprint.upper() == (
        keys.sub.fingerprint
    )
    assert _sequoia_verifies(_cert(keys), signature)
    assert not _sequoia_verifies(_cert(keys), signature, DATA + b"!")


def test_sequoia_verifies_an_ecdsa_p256_subkey_signature(keys: Keys) -> None:
    cert = craft.build_cert(keys.ec_primary, subkeys=[SubkeySpec(keys.ec_sub)])
    signature = craft.detached_signature(keys.ec_sub, DATA, hash_algo=8)
    assert _sequoia_verifies(cert, signature)
    assert not _sequoia_verifies(cert, signature, DATA[1:])


@pytest.mark.parametrize(
    "spec",
    [
        {"cross_sig": False},
        {"binding_by": "other"},
        {"corrupt_binding": True},
        {"revoked": True},
        {"expires": 3600},  # an hour after 2023-11-14: long gone
    ],
    ids=["no-cross-sig", "bound-by-another-key", "corrupt-binding", "revoked", "expired"],
)
def test_sequoia_rejects_a_subkey_without_a_valid_binding(keys: Keys, spec: dict) -> None:
    if spec.get("binding_by") == "other":
        spec = {"binding_by": keys.other}
    signature = craft.detached_signature(keys.sub, DATA)
    assert not _sequoia_verifies(_cert(keys, **spec), signature)
    # the primary key itself is still good
    assert _sequoia_verifies(_cert(keys, **spec), craft.detached_signature(keys.primary, DATA))


# --- GnuPG -------------------------------------------------------------------------------


@pytest.fixture
def gnupg(tmp_path: Path) -> Iterator[Path]:
    """A fresh GnuPG home per test; skipped without gpg unless FLEETGAP_REQUIRE_COMPAT=1."""
    missing = [tool for tool in ("gpg", "gpgv") if not shutil.which(tool)]
    if missing:
        if os.environ.get("FLEETGAP_REQUIRE_COMPAT") == "1":
            pytest.fail(f"{missing} missing (FLEETGAP_REQUIRE_COMPAT=1): apt-get install gnupg")
        pytest.skip(f"{missing} missing: apt-get install gnupg")
    home = tmp_path / "gnupg"
    home.mkdir(mode=0o700)
    yield home
    subprocess.run(["gpgconf", "--homedir", str(home), "--kill", "all"], capture_output=True)


def _run(*args: str | Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(a) for a in args], capture_output=True, text=True, errors="replace", check=False
    )


def _gpg_verify(home: Path, cert: bytes, data: bytes, signature: str) -> str:
    """Import `cert`, verify with gpg and with gpgv; the gpg status lines."""
    folder = home.parent
    (folder / "key.asc").write_text(craft.armor_public(cert))
    (folder / "key.gpg").write_bytes(cert)
    (folder / "data").write_bytes(data)
    (folder / "data.sig").write_text(signature)
    gpg = ["gpg", "--homedir", home, "--batch", "--status-fd", "1"]
    assert _run(*gpg, "--import", folder / "key.asc").returncode == 0
    result = _run(*gpg, "--verify", folder / "data.sig", folder / "data")
    gpgv = _run(
        "gpgv",
        "--homedir",
        home,
        "--status-fd",
        "1",
        "--keyring",
        folder / "key.gpg",
        folder / "data.sig",
        folder / "data",
    )
    assert (gpgv.returncode == 0) == (result.returncode == 0), gpgv.stdout + gpgv.stderr
    assert ("VALIDSIG" in gpgv.stdout) == ("VALIDSIG" in result.stdout)
    return result.stdout


def _validsig(status: str) -> list[str]:
    lines = [line.split() for line in status.splitlines() if line.startswith("[GNUPG:] VALIDSIG")]
    assert len(lines) == 1, status
    return lines[0]


@pytest.mark.parametrize("hash_algo", [2, 8, 10])
def test_gnupg_verifies_primary_and_subkey_signatures(
    keys: Keys, gnupg: Path, hash_algo: int
) -> None:
    cert = _cert(keys)
    for signer in (keys.sub, keys.primary):
        signature = craft.detached_signature(signer, DATA, hash_algo=hash_algo)
        status = _gpg_verify(gnupg, cert, DATA, signature)
        assert f"[GNUPG:] GOODSIG {signer.key_id} " in status
        fields = _validsig(status)
        assert fields[2] == signer.fingerprint and fields[-1] == keys.primary.fingerprint
        assert fields[9] == str(hash_algo)  # digest algorithm
        changed = DATA[:-1] + b"?"
        bad = _gpg_verify(gnupg, cert, changed, signature)
        assert f"[GNUPG:] BADSIG {signer.key_id} " in bad and "VALIDSIG" not in bad


def test_gnupg_verifies_ecdsa_p256(keys: Keys, gnupg: Path) -> None:
    cert = craft.build_cert(keys.ec_primary, subkeys=[SubkeySpec(keys.ec_sub)])
    for signer in (keys.ec_sub, keys.ec_primary):
        status = _gpg_verify(gnupg, cert, DATA, craft.detached_signature(signer, DATA))
        fields = _validsig(status)
        assert fields[2] == signer.fingerprint and fields[-1] == keys.ec_primary.fingerprint
        assert fields[8] == "19"  # ECDSA
    bad = _gpg_verify(gnupg, cert, b"x" + DATA, craft.detached_signature(keys.ec_sub, DATA))
    assert "[GNUPG:] BADSIG" in bad


def test_gnupg_verifies_a_text_signature_over_canonical_lines(keys: Keys, gnupg: Path) -> None:
    text = b"line one\nline two\r\nline three\n"
    signature = craft.detached_signature(keys.primary, text, sig_type=craft.SIG_TEXT)
    status = _gpg_verify(gnupg, _cert(keys), text, signature)
    assert _validsig(status)[10] == "01"  # signature class


def test_gnupg_refuses_a_signing_subkey_without_cross_signature(keys: Keys, gnupg: Path) -> None:
    status = _gpg_verify(
        gnupg, _cert(keys, cross_sig=False), DATA, craft.detached_signature(keys.sub, DATA)
    )
    assert "VALIDSIG" not in status and "[GNUPG:] ERRSIG" in status


# --- Go, as Elastic Agent and Fleet Server verify ----------------------------------------

RSA_FAILURE = "subkey signature invalid: openpgp: invalid signature: RSA verification failure"
NO_CROSS_SIG = "openpgp: invalid data: signing subkey is missing cross-signature"


def _go_verify(binary: Path, folder: Path, cert: bytes, signature: str) -> tuple[int, str]:
    (folder / "key.asc").write_text(craft.armor_public(cert))
    (folder / "data").write_bytes(DATA)
    (folder / "data.asc").write_text(signature)
    result = _run(binary, folder / "data", folder / "data.asc", folder / "key.asc")
    return result.returncode, result.stdout


def test_go_verifies_a_crafted_subkey_signature(
    goverify: Path,
    keys: Keys,
    tmp_path: Path,
) -> None:
    for signer in (keys.sub, keys.primary):
        code, out = _go_verify(
            goverify, tmp_path, _cert(keys), craft.detached_signature(signer, DATA)
        )
        assert (code, out.strip()) == (0, f"ok PGP[0] {keys.primary.fingerprint}")
    ec_cert = craft.build_cert(keys.ec_primary, subkeys=[SubkeySpec(keys.ec_sub)])
    code, out = _go_verify(goverify, tmp_path, ec_cert, craft.detached_signature(keys.ec_sub, DATA))
    assert (code, out.strip()) == (0, f"ok PGP[0] {keys.ec_primary.fingerprint}")


@pytest.mark.parametrize(
    ("spec", "error"),
    [
        ({"binding_by": "other"}, RSA_FAILURE),
        ({"cross_sig": False}, "subkey signature invalid: " + NO_CROSS_SIG),
        ({"corrupt_binding": True}, RSA_FAILURE),
        ({"binding_by": "other", "flags": craft.ENCRYPT}, RSA_FAILURE),
    ],
    ids=["bound-by-another-key", "no-cross-sig", "corrupt-binding", "encrypt-only-bad-binding"],
)
def test_go_refuses_the_whole_key_when_a_subkey_binding_is_bad(
    goverify: Path,
    keys: Keys,
    tmp_path: Path,
    spec: dict,
    error: str,
) -> None:
    if spec.get("binding_by") == "other":
        spec = {**spec, "binding_by": keys.other}
    cert = _cert(keys, **spec)
    for signer in (keys.sub, keys.primary):  # even the primary's own signature
        code, out = _go_verify(goverify, tmp_path, cert, craft.detached_signature(signer, DATA))
        assert code == 1
        assert out.startswith("fail PGP[0]: read armored key ring: ") and error in out, out


@pytest.mark.parametrize(
    ("spec", "verified"),
    [({"revoked": True}, False), ({"expires": 3600}, True)],
    ids=["revoked-subkey", "expired-subkey"],
)
def test_go_drops_revoked_subkeys_but_ignores_expiry(
    goverify: Path,
    keys: Keys,
    tmp_path: Path,
    spec: dict,
    verified: bool,
) -> None:
    code, out = _go_verify(
        goverify, tmp_path, _cert(keys, **spec), craft.detached_signature(keys.sub, DATA)
    )
    if verified:
        assert (code, out.strip()) == (0, f"ok PGP[0] {keys.primary.fingerprint}")
    else:
        assert (code, out.strip()) == (1, "fail PGP[0]: openpgp: signature made by unknown entity")


def test_go_and_sequoia_refuse_a_signature_without_issuer(
    goverify: Path,
    keys: Keys,
    tmp_path: Path,
) -> None:
    signature = craft.detached_signature(keys.primary, DATA, issuer=False)
    assert pysequoia.Sig.from_bytes(signature.encode()).issuer_fingerprint is None
    assert not _sequoia_verifies(_cert(keys), signature)
    code, out = _go_verify(goverify, tmp_path, _cert(keys), signature)
    assert code == 1 and "signature doesn't have an issuer" in out, out


def test_sha1_self_signatures_pass_go_but_not_sequoia(
    goverify: Path,
    keys: Keys,
    tmp_path: Path,
) -> None:
    """Sequoia's standard policy drops SHA-1 self-signatures made after 2023-02-01."""
    cert = craft.build_cert(keys.primary, subkeys=[SubkeySpec(keys.sub)], self_sig_hash=2)
    signature = craft.detached_signature(keys.sub, DATA)
    assert not _sequoia_verifies(cert, signature)
    code, out = _go_verify(goverify, tmp_path, cert, signature)
    assert (code, out.strip()) == (0, f"ok PGP[0] {keys.primary.fingerprint}")
