"""`bundle verify`: a changed byte anywhere (manifest, signature, a file, the last byte) is
refused with one line naming what is wrong."""

from __future__ import annotations

import hashlib
import io
import tarfile
from pathlib import Path

import pysequoia
import pytest
from click.testing import CliRunner

from fleetgap.bundle.manifest import FileEntry, Manifest, encode_manifest
from fleetgap.bundle.parts import Trailer
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


def _crafted(tmp_path: Path, members: list[tuple[tarfile.TarInfo, bytes]]) -> Path:
    """A bundle whose tar holds exactly `members` after an honest manifest of one file."""
    body = b"zip bytes"
    manifest = Manifest(
        "ab" * 16,
        "2026-01-01T00:00:00Z",
        1,
        "0",
        {},
        (
            FileEntry(
                "packages/a-1.0.0.zip", len(body), hashlib.sha256(body).hexdigest(), "none", None
            ),
        ),  # fmt: skip
    )
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        data = encode_manifest(manifest)
        info = tarfile.TarInfo("manifest.json")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if info.isreg() else None)
    payload = buffer.getvalue()
    trailer = Trailer("ab" * 16, 1, 1, len(payload), hashlib.sha256(payload).hexdigest())
    path = tmp_path / "crafted.tar"
    path.write_bytes(payload + trailer.encode())
    return path


def _member(name: str, data: bytes = b"zip bytes", kind: bytes = tarfile.REGTYPE):
    info = tarfile.TarInfo(name)
    info.type = kind
    info.size = len(data) if kind == tarfile.REGTYPE else 0
    if kind in (tarfile.SYMTYPE, tarfile.LNKTYPE):
        info.linkname = "/etc/passwd"
    return info, data


@pytest.mark.parametrize(
    ("members", "message"),
    [
        ([_member("packages/a-1.0.0.zip", kind=tarfile.SYMTYPE)], "is a symbolic link"),
        ([_member("packages/a-1.0.0.zip", kind=tarfile.LNKTYPE)], "is a hard link"),
        ([_member("packages/a-1.0.0.zip", kind=tarfile.CHRTYPE)], "is a device"),
        ([_member("../a-1.0.0.zip")], "unsafe path"),
        ([_member("/packages/a-1.0.0.zip")], "unsafe path"),
        ([_member("packages/a-1.0.0.zip"), _member("packages/a-1.0.0.zip")], "appears twice"),
        ([_member("packages/a-1.0.0.zip"), _member("packages/b.zip")], "not in the manifest"),
        ([_member("packages/a-1.0.0.zip", b"zip bytez")], "differs from the manifest"),
        ([_member("packages/a-1.0.0.zip", b"zip")], "the manifest says 9"),
        ([], "in the manifest but not in the bundle"),
    ],
    ids=[
        "symlink",
        "hardlink",
        "device",
        "dotdot",
        "absolute",
        "duplicate",
        "extra",
        "hash",
        "size",
        "missing",
    ],  # fmt: skip
)
def test_hostile_members_are_refused(tmp_path: Path, members, message: str) -> None:
    bundle = _crafted(tmp_path, members)
    result = CliRunner().invoke(main, ["bundle", "verify", str(bundle)])
    assert result.exit_code == 1
    assert message in result.output.strip().splitlines()[-1]
