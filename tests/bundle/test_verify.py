"""`bundle verify`: a changed byte anywhere (manifest, signature, a file, the last byte) is
refused with one line naming what is wrong."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pysequoia
import pytest
from click.testing import CliRunner

from fleetgap.bundle.manifest import FileEntry
from fleetgap.bundle.writer import write_bundle
from fleetgap.cli import main
from fleetgap.pgp.keys import SecretKey
from fleetgap.store import DataDir


@pytest.fixture(scope="module")
def signed(tmp_path_factory) -> tuple[Path, Path, bytes]:
    root = tmp_path_factory.mktemp("verify")
    data = DataDir(root / "cache").ensure()
    (data.packages / "a-1.0.0.zip").write_bytes(bytes(range(256)) * 400)
    (data.packages / "a-1.0.0.zip.sig").write_text("signature\n")
    entries = []
    for path in ("packages/a-1.0.0.zip", "packages/a-1.0.0.zip.sig"):
        body = (data.root / path).read_bytes()
        entries.append(FileEntry(path, len(body), hashlib.sha256(body).hexdigest(), "none", None))
    key = SecretKey(
        pysequoia.Tsk.generate(
            "signer <s@test.invalid>",
            cipher_suite=pysequoia.CipherSuite.RSA2k,
            profile=pysequoia.Profile.RFC4880,
        )
    )
    public = root / "signer.asc"
    public.write_text(key.public_key.armored)
    bundle = root / "b.tar"
    write_bundle(data, entries, bundle, selection={}, sign_key=key)
    return bundle, public, bundle.read_bytes()


def _verify(bundle: Path, public: Path):
    return CliRunner().invoke(main, ["bundle", "verify", str(bundle), "--trust-key", str(public)])


def test_an_intact_signed_bundle_passes_every_check(signed) -> None:
    bundle, public, _ = signed
    result = _verify(bundle, public)
    assert result.exit_code == 0, result.output
    assert "openpgp-detached manifest.json.sig" in result.output
    assert "packages/a-1.0.0.zip: sha256" in result.output


@pytest.mark.parametrize(
    ("where", "named"),
    [
        (lambda raw: raw.index(b'"bundle_id"') + 20, "manifest.json.sig"),  # manifest
        (lambda raw: raw.index(b"-----BEGIN PGP SIGNATURE-----") + 80, "manifest.json.sig"),
        (lambda raw: raw.index(bytes(range(256))) + 1000, "damaged"),  # a package
        (lambda raw: len(raw) - 1, "trailer"),  # the last byte
        (lambda raw: len(raw) - 600, "damaged"),  # tar padding: only the part hash sees it
    ],
    ids=["manifest", "signature", "package", "last-byte", "padding"],
)
def test_a_changed_byte_is_refused(signed, tmp_path: Path, where, named: str) -> None:
    bundle, public, raw = signed
    changed = bytearray(raw)
    changed[where(raw)] ^= 0x01
    copy = tmp_path / "b.tar"
    copy.write_bytes(bytes(changed))
    result = _verify(copy, public)
    assert result.exit_code == 1
    assert result.output.strip().splitlines()[-1].startswith("error: ")
    assert named in result.output.strip().splitlines()[-1]
