"""Package signatures: `fleetgap packages sign|verify` and Kibana's three states
(spec: kibana-fleet-client §6); `fleetgap verify artifact`."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from fleetgap.cli import main
from fleetgap.pgp.keys import SecretKey
from fleetgap.pgp.package_signatures import (
    UNKNOWN,
    UNVERIFIED,
    VERIFIED,
    sign_package,
    verify_package,
    verify_package_file,
)
from fleetgap.pgp.signatures import SignatureError

DROP_FILE = "elastic-agent-8.0.0-darwin-x86_64.tar.gz"


@pytest.fixture
def package(tmp_path: Path) -> Path:
    path = tmp_path / "nginx-1.20.0.zip"
    path.write_bytes(b"PK\x03\x04" + bytes(range(256)) * 40)
    return path


def test_signed_package_is_verified_with_kibanas_key_id(package, signing_key: SecretKey) -> None:
    sig = sign_package(package, signing_key)
    assert sig.name == "nginx-1.20.0.zip.sig"
    result = verify_package_file(package, signing_key.public_key)
    assert result.status == VERIFIED
    assert result.key_id == signing_key.public_key.key_id.lower()
    assert len(result.key_id) == 16


def test_elastic_key_id_is_reported_as_kibana_does(package, elastic_key_file: Path) -> None:
    from fleetgap.pgp.keys import read_public_key

    result = verify_package(package, read_public_key(elastic_key_file), None)
    assert result.key_id == "d27d666cd88e42b4"


def test_signature_by_another_key_is_unverified(package, signing_key, other_key) -> None:
    sign_package(package, other_key)
    assert verify_package_file(package, signing_key.public_key).status == UNVERIFIED


def test_changed_package_is_unverified(package, signing_key: SecretKey) -> None:
    sign_package(package, signing_key)
    package.write_bytes(package.read_bytes() + b"\x00")
    assert verify_package_file(package, signing_key.public_key).status == UNVERIFIED


def test_no_key_or_no_signature_is_unknown(package, signing_key: SecretKey) -> None:
    assert verify_package_file(package, None).status == UNKNOWN
    result = verify_package_file(package, signing_key.public_key)
    assert result.status == UNKNOWN
    assert result.key_id == signing_key.public_key.key_id.lower()


def test_unarmored_signature_fails_like_kibanas_download(package, signing_key) -> None:
    with pytest.raises(SignatureError, match="Kibana fails the download"):
        verify_package(package, signing_key.public_key, b"not a signature")


def test_cli_sign_and_verify_exit_codes(package, generated_key_files, other_key, tmp_path) -> None:
    secret, public, _ = generated_key_files
    runner = CliRunner()
    second = tmp_path / "second-1.0.0.zip"
    second.write_bytes(b"PK second")
    signed = runner.invoke(
        main, ["packages", "sign", str(package), str(second), "--key", str(secret)]
    )
    assert signed.exit_code == 0, signed.output
    assert Path(f"{second}.sig").is_file()
    verified = runner.invoke(main, ["packages", "verify", str(package), "--key", str(public)])
    assert verified.exit_code == 0
    assert verified.output.startswith("verified: ")
    as_json = runner.invoke(
        main, ["packages", "verify", str(package), "--key", str(public), "--json"]
    )
    assert json.loads(as_json.output)["verification_status"] == "verified"
    other = tmp_path / "other.pub"
    other.write_text(other_key.public_key.armored)
    unverified = runner.invoke(main, ["packages", "verify", str(package), "--key", str(other)])
    assert unverified.exit_code == 1
    assert unverified.output.startswith("unverified: ")
    Path(f"{package}.sig").unlink()
    unknown = runner.invoke(main, ["packages", "verify", str(package), "--key", str(public)])
    assert unknown.exit_code == 2
    assert unknown.output.startswith("unknown: ")


def test_cli_sign_refuses_an_eddsa_key(package, tmp_path: Path) -> None:
    import pysequoia

    eddsa = tmp_path / "eddsa.asc"
    eddsa.write_text(str(pysequoia.Tsk.generate("e <e@example.org>")))
    result = CliRunner().invoke(main, ["packages", "sign", str(package), "--key", str(eddsa)])
    assert result.exit_code == 1
    assert "refusing to sign with this key" in result.output
    assert not Path(f"{package}.sig").exists()


@pytest.fixture
def artifact_dir(drop: Path, tmp_path: Path) -> Path:
    for name in (DROP_FILE, f"{DROP_FILE}.sha512", f"{DROP_FILE}.asc", "public-key.pgp"):
        shutil.copy(drop / name, tmp_path / name)
    return tmp_path


def test_verify_artifact_prints_the_key_that_verified(artifact_dir, elastic_key_file) -> None:
    result = CliRunner().invoke(
        main,
        ["verify", "artifact", str(artifact_dir / DROP_FILE)]
        + ["--key", str(elastic_key_file), "--key", str(artifact_dir / "public-key.pgp")],
    )
    assert result.exit_code == 0, result.output
    assert "sha512 ok: 9af9aa01" in result.output
    assert "verified by F356B8E790E87390D67B139C1787BA7B3E2BAB30 (atest)" in result.output


def test_verify_artifact_uses_the_data_dir_keys_by_default(
    artifact_dir: Path, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    (data / "keys").mkdir(parents=True)
    shutil.copy(artifact_dir / "public-key.pgp", data / "keys" / "GPG-KEY-elastic-agent")
    result = CliRunner().invoke(
        main, ["verify", "artifact", str(artifact_dir / DROP_FILE), "--data", str(data), "--json"]
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["key_origin"].endswith("GPG-KEY-elastic-agent")


def test_verify_artifact_reports_a_checksum_mismatch(artifact_dir: Path) -> None:
    (artifact_dir / f"{DROP_FILE}.sha512").write_text(
        f"{hashlib.sha512(b'other').hexdigest()}  {DROP_FILE}\n"
    )
    result = CliRunner().invoke(
        main,
        ["verify", "artifact", str(artifact_dir / DROP_FILE)]
        + ["--key", str(artifact_dir / "public-key.pgp")],
    )
    assert result.exit_code == 1
    assert "error: checksum mismatch for" in result.output


def test_verify_artifact_reports_the_wrong_key(artifact_dir: Path, elastic_key_file) -> None:
    result = CliRunner().invoke(
        main, ["verify", "artifact", str(artifact_dir / DROP_FILE), "--key", str(elastic_key_file)]
    )
    assert result.exit_code == 1
    assert "signature made by unknown entity" in result.output


def test_verify_artifact_needs_the_sidecar(artifact_dir: Path) -> None:
    (artifact_dir / f"{DROP_FILE}.sha512").unlink()
    result = CliRunner().invoke(
        main,
        ["verify", "artifact", str(artifact_dir / DROP_FILE)]
        + ["--key", str(artifact_dir / "public-key.pgp")],
    )
    assert result.exit_code == 1
    assert ".sha512 is missing" in result.output


def test_cli_unreadable_key_is_unknown_as_in_kibana(package, tmp_path: Path) -> None:
    junk = tmp_path / "junk.asc"
    junk.write_text("not a key")
    result = CliRunner().invoke(main, ["packages", "verify", str(package), "--key", str(junk)])
    assert result.exit_code == 2
    assert "warning: Kibana could not use this key" in result.output
    assert "unknown: no package verification key configured" in result.output
