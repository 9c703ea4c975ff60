"""write_bundle: a plain tar (manifest first, signature second), split parts each checkable
on their own, and manifests that refuse paths leaving the data directory."""

from __future__ import annotations

import hashlib
import tarfile
from pathlib import Path

import pysequoia
import pytest

from fleetgap.bundle.manifest import FileEntry, ManifestError, decode_manifest, encode_manifest
from fleetgap.bundle.parts import PartError, PayloadReader, check_part, open_parts
from fleetgap.bundle.writer import parse_size, write_bundle
from fleetgap.errors import FleetgapError
from fleetgap.pgp.keys import SecretKey
from fleetgap.pgp.signatures import verify_bytes
from fleetgap.store import DataDir


def _entry(root: Path, path: str, verified_by: str = "none") -> FileEntry:
    data = (root / path).read_bytes()
    return FileEntry(path, len(data), hashlib.sha256(data).hexdigest(), verified_by, None)


@pytest.fixture
def cache(tmp_path: Path) -> tuple[DataDir, list[FileEntry]]:
    data = DataDir(tmp_path / "cache").ensure()
    (data.packages / "a-1.0.0.zip").write_bytes(bytes(range(256)) * 1000)
    (data.packages / "a-1.0.0.zip.sig").write_text("signature\n")
    (data.keys / "GPG-KEY-elastic-agent").write_text("key\n")
    paths = ["packages/a-1.0.0.zip", "packages/a-1.0.0.zip.sig", "keys/GPG-KEY-elastic-agent"]
    return data, [_entry(data.root, p) for p in paths]


def test_a_bundle_is_a_plain_tar_with_the_manifest_first_and_its_signature_second(
    cache, tmp_path: Path
) -> None:
    data, entries = cache
    tsk = pysequoia.Tsk.generate(
        "bundle test <b@test.invalid>",
        cipher_suite=pysequoia.CipherSuite.RSA2k,
        profile=pysequoia.Profile.RFC4880,
    )
    key = SecretKey(tsk)
    summary = write_bundle(data, entries, tmp_path / "b.tar", selection={"a": 1}, sign_key=key)
    with tarfile.open(tmp_path / "b.tar") as tar:
        names = tar.getnames()
        manifest_bytes = tar.extractfile("manifest.json").read()
        signature = tar.extractfile("manifest.json.sig").read()
    # keys, then sidecars, then the files they verify
    assert names == [
        "manifest.json",
        "manifest.json.sig",
        "keys/GPG-KEY-elastic-agent",
        "packages/a-1.0.0.zip.sig",
        "packages/a-1.0.0.zip",
    ]
    assert verify_bytes(manifest_bytes, signature, [key.public_key]).fingerprint == key.fingerprint
    manifest = decode_manifest(manifest_bytes)
    assert manifest.bundle_id == summary.bundle_id
    assert {e.path: e.sha256 for e in manifest.files} == {e.path: e.sha256 for e in entries}
    assert summary.parts == [tmp_path / "b.tar"]


def test_split_parts_each_carry_a_trailer_and_together_give_the_tar(cache, tmp_path) -> None:
    data, entries = cache
    summary = write_bundle(data, entries, tmp_path / "s.tar", selection={}, split=64 * 1024)
    assert len(summary.parts) > 2
    parts = open_parts([tmp_path / "s.tar"])  # the stem finds s.tar.001, s.tar.002, …
    for part in parts:
        check_part(part)
    with tarfile.open(fileobj=PayloadReader(parts), mode="r|") as tar:
        members = {m.name: tar.extractfile(m).read() for m in tar}
    zip_bytes = (data.packages / "a-1.0.0.zip").read_bytes()
    assert members["packages/a-1.0.0.zip"] == zip_bytes


def test_a_split_part_is_at_most_the_size_given_trailer_included(cache, tmp_path) -> None:
    data, entries = cache
    summary = write_bundle(data, entries, tmp_path / "s.tar", selection={}, split=64 * 1024)
    sizes = [part.stat().st_size for part in summary.parts]
    assert sizes[:-1] == [64 * 1024] * (len(sizes) - 1)
    assert 512 < sizes[-1] <= 64 * 1024
    assert summary.bytes == sum(sizes)


def test_a_damaged_missing_or_foreign_part_is_named(cache, tmp_path) -> None:
    data, entries = cache
    one = write_bundle(data, entries, tmp_path / "one.tar", selection={}, split=64 * 1024)
    two = write_bundle(data, entries, tmp_path / "two.tar", selection={}, split=64 * 1024)
    second = one.parts[1]
    raw = bytearray(second.read_bytes())
    raw[100] ^= 1
    second.write_bytes(bytes(raw))
    with pytest.raises(PartError, match="one.tar.002: damaged"):
        check_part(open_parts(one.parts)[1])
    with pytest.raises(PartError, match=r"missing part\(s\) 2 \(one.tar.002\)"):
        open_parts([one.parts[0], *one.parts[2:]])
    with pytest.raises(PartError, match="two different bundles"):
        open_parts([one.parts[0], two.parts[1]])
    truncated = tmp_path / "cut.tar.001"
    truncated.write_bytes(two.parts[0].read_bytes()[:-1])
    with pytest.raises(PartError, match="cut.tar.001"):
        open_parts([truncated])


def test_a_file_changed_in_the_cache_stops_the_write_and_leaves_no_bundle(cache, tmp_path):
    data, entries = cache
    (data.packages / "a-1.0.0.zip.sig").write_text("Signature\n")  # same size, other bytes
    with pytest.raises(FleetgapError, match="changed in the cache"):
        write_bundle(data, entries, tmp_path / "b.tar", selection={})
    assert list(tmp_path.glob("*b.tar*")) == []


@pytest.mark.parametrize(
    "path",
    ["../etc/passwd", "/etc/passwd", "packages/../../x", "state/receipts/x", "packages/.x.part"],
)
def test_manifest_paths_stay_inside_the_data_directory(cache, path: str) -> None:
    _data, entries = cache
    bad = FileEntry(path, 1, "0" * 64, "none", None)
    from fleetgap.bundle.manifest import Manifest

    manifest = Manifest("0" * 32, "2026-01-01T00:00:00Z", 1, "0", {}, (*entries, bad))
    with pytest.raises(ManifestError, match="manifest path"):
        encode_manifest(manifest)


def test_sizes_read_as_operators_write_them() -> None:
    assert parse_size("4GiB") == 4 << 30
    assert parse_size("500MB") == 500_000_000
    assert parse_size("1048576") == 1 << 20
    with pytest.raises(FleetgapError):
        parse_size("lots")


def test_write_progress_counts_every_carried_byte_once(cache, tmp_path) -> None:
    data, entries = cache

    class Recorded:
        total: int | None = None
        done = 0

        def begin(self, total_bytes: int) -> None:
            self.total = total_bytes

        def advance(self, nbytes: int) -> None:
            self.done += nbytes

    recorded = Recorded()
    write_bundle(data, entries, tmp_path / "p.tar", selection={}, progress=recorded)
    assert recorded.total == recorded.done == sum(e.size for e in entries)


def test_a_file_changed_in_the_cache_after_its_first_chunk_stops_the_write(cache, tmp_path) -> None:
    data, entries = cache
    big = data.packages / "b-1.0.0.zip"
    big.write_bytes(b"x" * (3 << 20))  # several 1 MiB chunks, hashed on the worker thread
    entries = [*entries, _entry(data.root, "packages/b-1.0.0.zip")]
    big.write_bytes(b"x" * (2 << 20) + b"y" * (1 << 20))  # same size, last chunk differs
    with pytest.raises(FleetgapError, match="changed in the cache"):
        write_bundle(data, entries, tmp_path / "c.tar", selection={})
    assert not list(tmp_path.glob("*c.tar*"))


def test_an_unsigned_bundle_that_carries_no_file_reads_to_its_end(cache, tmp_path) -> None:
    """An unsigned delta with nothing new is a tar of manifest.json alone: the reader met the
    end of the tar while looking for the signature, and asking the tar stream again (in
    finish) failed with 'not a readable tar stream: seeking backwards is not allowed'."""
    from dataclasses import replace

    from fleetgap.bundle.reader import BundleReader, find_parts

    data, entries = cache
    listed_only = [replace(entry, in_bundle=False) for entry in entries]
    write_bundle(data, listed_only, tmp_path / "d.tar", selection={}, base={})
    with BundleReader(find_parts([tmp_path / "d.tar"])) as reader:
        assert reader.signature is None
        assert list(reader.members()) == []
        reader.finish()


@pytest.mark.parametrize(
    "paths",
    [
        ("packages/nginx-1.2.0.zip", "packages/nginx-1.2.0.ZIP"),  # .ZIP needs no .sig
        ("keys/GPG-KEY-elastic-agent", "keys/gpg-key-elastic-agent"),
        ("packages/nginx/1.2.0/manifest.yml", "packages/NGINX"),
    ],
)
def test_paths_that_are_one_file_where_case_is_ignored_are_refused(paths) -> None:
    """On a file system that ignores case (macOS, FAT/exFAT, ext4 casefold folders) two such
    entries are one file: the second, checked under its own rule, would replace the first."""
    from fleetgap.bundle.manifest import Manifest

    files = tuple(FileEntry(p, 1, "0" * 64, "none", None) for p in paths)
    manifest = Manifest("0" * 32, "2026-01-01T00:00:00Z", 1, "0", {}, files)
    with pytest.raises(ManifestError, match="twice|both as a file and as a folder"):
        encode_manifest(manifest)
