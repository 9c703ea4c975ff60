"""`--verify-package-signatures`: only packages whose `.sig` verifies are served."""

from __future__ import annotations

import logging
from pathlib import Path

import pysequoia
import pytest

from fleetgap.errors import FleetgapError
from fleetgap.packages.index import LoadOptions, load_index
from fleetgap.pgp.keys import SecretKey
from fleetgap.pgp.signatures import sign_file

from builders import write_dir_package, write_zip_package


def _key(uid: str) -> SecretKey:
    # RSA-2048 keeps the test fast; fleetgap's own keys are RSA-4096.
    tsk = pysequoia.Tsk.generate(uid, cipher_suite=pysequoia.CipherSuite.RSA2k)
    return SecretKey(tsk)


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> tuple[SecretKey, SecretKey, Path]:
    trusted, stranger = _key("Trusted <t@example.org>"), _key("Stranger <s@example.org>")
    public = tmp_path_factory.mktemp("keys") / "trusted.asc"
    public.write_text(trusted.public_key.armored)
    return trusted, stranger, public


def test_only_verified_zips_are_served(tmp_path: Path, keys, caplog) -> None:
    trusted, stranger, public = keys
    good = write_zip_package(tmp_path, "good", "1.0.0")
    sign_file(good, trusted, Path(f"{good}.sig"))
    forged = write_zip_package(tmp_path, "forged", "1.0.0")
    sign_file(forged, stranger, Path(f"{forged}.sig"))
    tampered = write_zip_package(tmp_path, "tampered", "1.0.0")
    sign_file(tampered, trusted, Path(f"{tampered}.sig"))
    with open(tampered, "ab") as f:
        f.write(b"\0")
    write_zip_package(tmp_path, "unsigned", "1.0.0")
    directory = write_dir_package(tmp_path, "folder", "1.0.0")
    Path(f"{directory}.sig").write_text("whatever")

    with caplog.at_level(logging.WARNING, logger="fleetgap.packages"):
        index = load_index(
            LoadOptions((tmp_path,), require_signatures=False, verify_keys=(public,))
        )

    assert list(index.by_key) == [("good", "1.0.0")]
    reasons = {r.path.name: r.reason for r in index.refused}
    assert "does not verify" in reasons["forged-1.0.0.zip"]
    assert "does not verify" in reasons["tampered-1.0.0.zip"]
    assert "missing a required signature" in reasons["unsigned-1.0.0.zip"]
    assert "directory" in reasons["1.0.0"]
    assert caplog.text.count("package refused") == 4


def test_unreadable_key_file_is_one_clear_error(tmp_path: Path) -> None:
    write_zip_package(tmp_path, "good", "1.0.0")
    with pytest.raises(FleetgapError, match="cannot read key file"):
        load_index(
            LoadOptions((tmp_path,), require_signatures=False, verify_keys=(tmp_path / "nope.asc",))
        )
