"""Write a bundle: the manifest, its signature, then the files, as one streamed tar.

The caller (`bundle create`) has already verified every file into the cache data directory
and describes each as a `FileEntry`. The writer streams each file into the tar while hashing
it again, so a file that changed in the cache since it was verified stops the write instead
of crossing the gap with a manifest that does not describe it.
"""

from __future__ import annotations

import hashlib
import re
import tarfile
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from fleetgap import __version__
from fleetgap.bundle.hashpipe import HashPipe
from fleetgap.bundle.manifest import (
    MANIFEST_NAME,
    SIGNATURE_NAME,
    FileEntry,
    Manifest,
    encode_manifest,
    sorted_entries,
)
from fleetgap.bundle.parts import writing
from fleetgap.errors import FleetgapError
from fleetgap.pgp.keys import SecretKey
from fleetgap.pgp.signatures import sign_bytes
from fleetgap.store import DataDir

_CHUNK = 1 << 20
_BASE_FIELDS = ("format", "format_version", "generated", "bundles", "signer")


class WriteProgress(Protocol):
    def begin(self, total_bytes: int) -> None: ...

    def advance(self, nbytes: int) -> None: ...


@dataclass(frozen=True)
class BundleSummary:
    bundle_id: str
    sequence: int
    files: int  # files carried in the tar (a delta's manifest lists more)
    bytes: int  # bytes written, all parts together
    parts: list[Path]
    signer: str | None = None  # fingerprint of the key that signed the manifest
    delta: bool = False


def write_bundle(
    cache: DataDir,
    entries: Sequence[FileEntry],
    out: Path,
    *,
    selection: Mapping[str, Any],
    sequence: int | None = None,
    base: Mapping[str, Any] | None = None,
    sign_key: SecretKey | None = None,
    split: int | None = None,
    progress: WriteProgress | None = None,
) -> BundleSummary:
    """Write the bundle to `out` (or `out.001`, … with `split`); nothing is left at `out` if
    it fails. `entries` with in_bundle=False (a delta) are listed, not carried."""
    now = time.time()
    manifest = Manifest(
        bundle_id=uuid.uuid4().hex,
        created=datetime.fromtimestamp(int(now), UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        sequence=int(now) if sequence is None else sequence,
        fleetgap_version=__version__,
        selection=dict(selection),
        files=sorted_entries(entries),
        base=_base_fields(base) if base is not None else None,
        delta=base is not None or any(not entry.in_bundle for entry in entries),
    )
    manifest_bytes = encode_manifest(manifest)
    signature = sign_bytes(manifest_bytes, sign_key) if sign_key is not None else None
    for entry in manifest.carried:
        _check_source(cache, entry)
    if progress is not None:
        progress.begin(manifest.carried_bytes)
    # Not tarfile's stream mode ("w|"): it copies every chunk through its own buffer.
    with HashPipe() as hashes, writing(out, manifest.bundle_id, split, hashes) as stream:
        with tarfile.open(fileobj=stream, mode="w:", format=tarfile.PAX_FORMAT) as tar:
            tar.copybufsize = _CHUNK  # tarfile copies members 16 KiB at a time by default
            _add_bytes(tar, MANIFEST_NAME, manifest_bytes, int(now))
            if signature is not None:
                _add_bytes(tar, SIGNATURE_NAME, signature, int(now))
            for entry in manifest.carried:
                _add_file(tar, cache.root / entry.path, entry, int(now), hashes, progress)
        parts = stream.finish()
        written = stream.written
    return BundleSummary(
        bundle_id=manifest.bundle_id,
        sequence=manifest.sequence,
        files=len(manifest.carried),
        bytes=written + 512 * len(parts),
        parts=parts,
        signer=sign_key.fingerprint if sign_key is not None else None,
        delta=manifest.delta,
    )


def parse_size(text: str) -> int:
    """`4GiB`, `500MB`, `700M`, `1048576`: bytes (KB/MB/GB decimal, KiB/MiB/GiB binary; a
    bare K/M/G is binary, as `split -b` reads it)."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([KMGT]?)(i?B?)\s*", text, re.IGNORECASE)
    if not match:
        raise FleetgapError(f"invalid size {text!r}: use e.g. 4GiB, 500MB or a number of bytes")
    number, prefix, suffix = match.groups()
    power = "KMGT".find(prefix.upper()) + 1 if prefix else 0
    decimal = suffix.upper() == "B" and prefix != ""
    size = int(float(number) * ((1000 if decimal else 1024) ** power))
    if size <= 0:
        raise FleetgapError(f"invalid size {text!r}: must be more than 0 bytes")
    return size


def _base_fields(base: Mapping[str, Any]) -> dict[str, Any]:
    """What a delta records of the receipt it was made against (not its file list: the
    manifest lists the whole state anyway)."""
    return {name: base[name] for name in _BASE_FIELDS if name in base}


def _check_source(cache: DataDir, entry: FileEntry) -> None:
    path = cache.root / entry.path
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise FleetgapError(f"{path} is not in the cache; cannot write the bundle") from None
    if size != entry.size:
        raise FleetgapError(f"{path} is {size} bytes, its entry says {entry.size}")


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes, mtime: int) -> None:
    import io

    tar.addfile(_member(name, len(data), mtime), io.BytesIO(data))


def _add_file(
    tar: tarfile.TarFile,
    path: Path,
    entry: FileEntry,
    mtime: int,
    hashes: HashPipe,
    progress: WriteProgress | None,
) -> None:
    with open(path, "rb") as handle:
        source = _HashingReader(handle, hashes, progress)
        tar.addfile(_member(entry.path, entry.size, mtime), source)
        if handle.read(1):
            raise FleetgapError(f"{path} grew while the bundle was written")
    hashes.wait()
    if source.digest.hexdigest() != entry.sha256:
        raise FleetgapError(
            f"{path} changed in the cache since it was verified (SHA-256 "
            f"{source.digest.hexdigest()}, its entry says {entry.sha256})"
        )


def _member(name: str, size: int, mtime: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size = size
    info.mtime = mtime
    info.mode = 0o644
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


class _HashingReader:
    def __init__(self, handle, hashes: HashPipe, progress: WriteProgress | None) -> None:
        self.handle = handle
        self.hashes = hashes
        self.progress = progress
        self.digest = hashlib.sha256()

    def read(self, size: int = -1) -> bytes:
        data = self.handle.read(size)
        self.hashes.update(self.digest, data)
        if self.progress is not None and data:
            self.progress.advance(len(data))
        return data
