"""Signatures fleetgap makes verify under GnuPG and under Go's golang.org/x/crypto/openpgp
(the library Elastic Agent and Fleet Server use), via our own verifier in goverify/.

Needs Debian's `gnupg`, `golang-go` and `golang-golang-x-crypto-dev` (.ci/run installs them).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pysequoia
import pytest

from fleetgap.pgp.keys import SecretKey
from fleetgap.pgp.package_signatures import sign_package
from fleetgap.pgp.signatures import sign_file

GOVERIFY = Path(__file__).parent / "goverify" / "main.go"
GOPATH = "/usr/share/gocode"  # where Debian's golang-golang-x-crypto-dev puts the source


@pytest.fixture(scope="module")
def goverify(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Our Go verifier, built offline in GOPATH mode against Debian's x/crypto."""
    go = shutil.which("go")
    assert go, "Go is missing: apt-get install golang-go golang-golang-x-crypto-dev"
    assert (Path(GOPATH) / "src/golang.org/x/crypto/openpgp").is_dir(), (
        "x/crypto is missing: apt-get install golang-golang-x-crypto-dev"
    )
    out = tmp_path_factory.mktemp("go")
    env = {
        **os.environ,
        "GO111MODULE": "off",
        "GOPATH": GOPATH,
        "GOFLAGS": "",
        "CGO_ENABLED": "0",
    }
    binary = out / "goverify"
    subprocess.run(
        [go, "build", "-o", str(binary), str(GOVERIFY)], check=True, env=env, capture_output=True
    )
    return binary


def _go(binary: Path, data: Path, signature: Path, *keys: Path) -> subprocess.CompletedProcess:
    args = [str(binary), str(data), str(signature), *map(str, keys)]
    return subprocess.run(args, capture_output=True, text=True, check=False)


@pytest.fixture
def signed(signing_key: SecretKey, tmp_path: Path) -> tuple[Path, Path, Path]:
    data = tmp_path / "elastic-agent-9.1.0-linux-x86_64.tar.gz"
    data.write_bytes(os.urandom(100_000))
    signature = sign_file(data, signing_key)
    public = tmp_path / "key.pub"
    public.write_text(signing_key.public_key.armored)
    return data, signature, public


def test_go_verifies_a_fleetgap_signature(goverify: Path, signed, signing_key: SecretKey) -> None:
    data, signature, public = signed
    result = _go(goverify, data, signature, public)
    assert result.returncode == 0, result.stdout
    assert result.stdout.strip() == f"ok PGP[0] {signing_key.fingerprint}"


def test_go_tries_keys_in_order_like_the_agent(
    goverify: Path, signed, elastic_key_file: Path
) -> None:
    data, signature, public = signed
    result = _go(goverify, data, signature, elastic_key_file, public)
    assert result.returncode == 0
    lines = result.stdout.splitlines()
    assert lines[0] == "fail PGP[0]: openpgp: signature made by unknown entity"
    assert lines[1].startswith("ok PGP[1] ")


def test_go_rejects_changed_data(goverify: Path, signed, tmp_path: Path) -> None:
    data, signature, public = signed
    changed = tmp_path / "changed"
    changed.write_bytes(data.read_bytes()[:-1] + b"\x00")
    result = _go(goverify, changed, signature, public)
    assert result.returncode == 1
    assert "fail PGP[0]" in result.stdout


def test_go_rejects_a_fleetgap_signature_with_another_key(
    goverify: Path, signed, other_key: SecretKey, tmp_path: Path
) -> None:
    data, signature, _ = signed
    other = tmp_path / "other.pub"
    other.write_text(other_key.public_key.armored)
    result = _go(goverify, data, signature, other)
    assert result.returncode == 1
    assert "unknown entity" in result.stdout


def test_go_verifies_a_package_signature(goverify: Path, signing_key: SecretKey, tmp_path) -> None:
    package = tmp_path / "nginx-1.2.3.zip"
    package.write_bytes(b"PK\x03\x04 not really a zip")
    public = tmp_path / "key.pub"
    public.write_text(signing_key.public_key.armored)
    assert _go(goverify, package, sign_package(package, signing_key), public).returncode == 0


def test_go_cannot_use_eddsa_keys_which_is_why_fleetgap_refuses_them(
    goverify: Path, tmp_path: Path
) -> None:
    eddsa = pysequoia.Tsk.generate("eddsa <e@example.org>")  # Cv25519, pysequoia's default
    data = tmp_path / "data"
    data.write_bytes(b"data")
    signature = tmp_path / "data.asc"
    detached = pysequoia.SignatureMode.DETACHED
    pysequoia.sign_file(eddsa.signer(), str(data), str(signature), mode=detached)
    public = tmp_path / "eddsa.pub"
    public.write_text(str(eddsa.extract_certificate()))
    result = _go(goverify, data, signature, public)
    assert result.returncode == 1
    assert "unsupported" in result.stdout


def test_go_verifies_the_agent_test_vector(goverify: Path, drop: Path) -> None:
    name = "elastic-agent-8.0.0-darwin-x86_64.tar.gz"
    result = _go(goverify, drop / name, drop / f"{name}.asc", drop / "public-key.pgp")
    assert result.returncode == 0


def _gpg(home: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["gpg", "--homedir", str(home), "--batch", "--status-fd", "1", *args],
        capture_output=True,
        text=True,
        errors="replace",
        check=False,
    )


def test_gnupg_verifies_a_fleetgap_signature(
    gpg_home: Path, signed, signing_key: SecretKey
) -> None:
    data, signature, public = signed
    assert _gpg(gpg_home, "--import", str(public)).returncode == 0
    result = _gpg(gpg_home, "--verify", str(signature), str(data))
    assert result.returncode == 0, result.stderr
    assert "[GNUPG:] VALIDSIG " in result.stdout
    assert signing_key.fingerprint in result.stdout


def test_gnupg_rejects_changed_data(gpg_home: Path, signed, tmp_path: Path) -> None:
    data, signature, public = signed
    _gpg(gpg_home, "--import", str(public))
    changed = tmp_path / "changed"
    changed.write_bytes(data.read_bytes() + b"!")
    result = _gpg(gpg_home, "--verify", str(signature), str(changed))
    assert result.returncode != 0
    assert "[GNUPG:] BADSIG" in result.stdout
