"""Read a bundle as a stream: its parts in order, the manifest first, then each member.

Nothing is extracted by tarfile: each member is checked against the manifest (a regular
file, a name the manifest lists, in the manifest's order, with its size) and handed to the
caller as chunks, hashed on the way (`BundleError` names the member whose SHA-256 differs).
The payload's part trailers are checked as each part's last byte is read, and the bytes
after the tar are read too, so `finish` fails on a damaged part even where tar never looked.
"""

from __future__ import annotations

import hashlib
import re
import tarfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from fleetgap.bundle.hashpipe import HashPipe
from fleetgap.bundle.manifest import (
    MANIFEST_NAME,
    MAX_MANIFEST_BYTES,
    SIGNATURE_NAME,
    FileEntry,
    Manifest,
    decode_manifest,
)
from fleetgap.bundle.parts import Part, PartError, PayloadReader, first_missing, read_trailer
from fleetgap.bundle.tar_headers import BoundedTarInfo
from fleetgap.errors import FleetgapError

_CHUNK = 1 << 20
MAX_SIGNATURE_BYTES = 1 << 20


class BundleError(FleetgapError):
    """A bundle that must not be used; the message names the part or member."""


def find_parts(files: Sequence[Path]) -> list[Part]:
    """The parts of one bundle, in order. Each argument is a bundle file, a part (FILE.001),
    or the name the parts share (FILE for FILE.001, FILE.002, …)."""
    paths: list[Path] = []
    for given in map(Path, files):
        if given.exists() or not given.with_name(given.name + ".001").exists():
            paths.append(given)
            continue
        paths.extend(sorted(given.parent.glob(f"{glob_escape(given.name)}.[0-9][0-9][0-9]*")))
    if not paths:
        raise BundleError("no bundle file given")
    parts = [read_trailer(path) for path in dict.fromkeys(paths)]
    first = parts[0].trailer
    for part in parts:
        if part.trailer.bundle_id != first.bundle_id:
            raise BundleError(
                f"{part.path} is from bundle {part.trailer.bundle_id}, {parts[0].path} from "
                f"bundle {first.bundle_id}: parts of two different bundles"
            )
        if part.trailer.parts != first.parts:
            raise BundleError(f"{part.path}: its trailer disagrees on the number of parts")
    by_index: dict[int, Part] = {}
    for part in parts:
        if part.trailer.part in by_index:
            raise BundleError(
                f"{part.path} and {by_index[part.trailer.part].path} are both "
                f"part {part.trailer.part}"
            )
        by_index[part.trailer.part] = part
    if len(by_index) != first.parts:
        stem = _stem(parts[0].path)
        listed, more = first_missing(by_index, first.parts)
        names = ", ".join(f"{stem}.{index:03d}" for index in listed)
        raise BundleError(
            f"bundle {first.bundle_id} has {first.parts} parts; missing: {names}{more}"
        )
    return [by_index[index] for index in range(1, first.parts + 1)]


def glob_escape(name: str) -> str:
    return re.sub(r"([*?\[])", r"[\1]", name)


def _stem(path: Path) -> Path:
    match = re.fullmatch(r"(.*)\.\d{3,}", path.name)
    return path.with_name(match.group(1)) if match else path


@dataclass(frozen=True)
class Member:
    entry: FileEntry
    chunks: Iterator[bytes]  # the member's bytes; its SHA-256 is checked at the end


class BundleReader:
    """`with BundleReader(parts) as reader:` reader.manifest, reader.signature, then
    `for member in reader.members():` consume `member.chunks` fully, then `reader.finish()`."""

    def __init__(self, parts: Sequence[Part]) -> None:
        self.parts = list(parts)
        self._hashes = HashPipe()  # SHA-256 of members and parts beside the reads
        self.payload = PayloadReader(self.parts, self._hashes)
        self.manifest_bytes = b""
        self.signature: bytes | None = None
        self._pending: tarfile.TarInfo | None = None
        self._ended = False  # the tar's end was met: a stream tar cannot be asked again
        self._seen: set[str] = set()
        try:
            self._tar = tarfile.open(  # noqa: SIM115
                fileobj=self.payload, mode="r|", bufsize=_CHUNK, tarinfo=BoundedTarInfo
            )
            first = self._next()
            if first is None or first.name != MANIFEST_NAME:
                found = "nothing" if first is None else repr(first.name)
                raise BundleError(
                    f"{self._where()}: the first member is {found}, not {MANIFEST_NAME}"
                )
            self.manifest_bytes = self._small(first, MAX_MANIFEST_BYTES)
            second = self._next()
            if second is not None and second.name == SIGNATURE_NAME:
                self.signature = self._small(second, MAX_SIGNATURE_BYTES)
            else:
                self._pending = second
        except BaseException as exc:
            self._hashes.close()
            raise self._explained(exc) from None
        try:
            self.manifest: Manifest = decode_manifest(self.manifest_bytes)
        except FleetgapError as exc:
            self._hashes.close()
            raise BundleError(self._with_damage(f"{self._where()}: {exc}")) from None

    @property
    def hashes(self) -> HashPipe:
        """The worker the reader hashes on; a caller's own digests of member chunks may run
        there too (in order; a member's are done when its chunks end)."""
        return self._hashes

    def __enter__(self) -> BundleReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.payload.close()
        self._hashes.close()

    def members(self) -> Iterator[Member]:
        """Every carried file, in the manifest's order."""
        for entry in self.manifest.carried:
            try:
                info = self._pending if self._pending is not None else self._next()
                self._pending = None
            except BaseException as exc:
                raise self._explained(exc) from None
            if info is None:
                raise BundleError(
                    self._with_damage(
                        f"{self._where()}: truncated: {entry.path} and what follows it in the "
                        "manifest are not in the bundle"
                    )
                )
            if info.name != entry.path:
                if self.manifest.entry(info.name) is None:
                    raise BundleError(
                        f"{self._where()}: member {info.name!r} is not in the manifest"
                    )
                raise BundleError(
                    f"{self._where()}: member {info.name} is out of the "
                    f"manifest's order (expected {entry.path})"
                )
            if info.size != entry.size:
                raise BundleError(
                    f"{self._where()}: member {info.name} is {info.size} bytes, "
                    f"the manifest says {entry.size}"
                )
            yield Member(entry, self._chunks(info, entry))

    def finish(self) -> None:
        """No member after the last one, and every byte of every part read and checked."""
        try:
            extra = self._pending if self._pending is not None else self._next()
            if extra is not None:
                what = (
                    "not in the manifest"
                    if self.manifest.entry(extra.name) is None
                    else ("a second time")
                )
                raise BundleError(f"{self._where()}: member {extra.name!r} is {what}")
            self.payload.drain()
        except BaseException as exc:
            raise self._explained(exc) from None

    def _chunks(self, info: tarfile.TarInfo, entry: FileEntry) -> Iterator[bytes]:
        digest = hashlib.sha256()
        try:
            handle = self._tar.extractfile(info)
            assert handle is not None
            while chunk := handle.read(_CHUNK):
                self._hashes.update(digest, chunk)
                yield chunk
            self._hashes.wait()
        except BaseException as exc:
            raise self._explained(exc) from None
        if digest.hexdigest() != entry.sha256:
            raise BundleError(
                self._with_damage(
                    f"{self._where()}: {entry.path} does not match the manifest (SHA-256 "
                    f"{digest.hexdigest()}, the manifest says {entry.sha256})"
                )
            )

    def _next(self) -> tarfile.TarInfo | None:
        if self._ended:
            return None
        info = self._tar.next()
        if info is None:
            self._ended = True
            return None
        name = info.name
        if name.startswith("/") or ".." in name.split("/") or "\\" in name:
            raise BundleError(f"{self._where()}: member {name!r} has an absolute or '..' path")
        if info.issym() or info.islnk():
            raise BundleError(
                f"{self._where()}: member {name!r} is a link "
                f"(to {info.linkname!r}); a bundle holds only files"
            )
        if not info.isreg():
            raise BundleError(
                f"{self._where()}: member {name!r} is not a regular file (device, fifo or folder)"
            )
        if name in self._seen:
            raise BundleError(f"{self._where()}: member {name!r} appears twice")
        self._seen.add(name)
        return info

    def _small(self, info: tarfile.TarInfo, limit: int) -> bytes:
        if info.size > limit:
            raise BundleError(f"{self._where()}: {info.name} is {info.size} bytes, over {limit}")
        handle = self._tar.extractfile(info)
        assert handle is not None
        return handle.read()

    def _where(self) -> str:
        if len(self.parts) == 1:
            return str(self.parts[0].path)
        return f"bundle {_stem(self.parts[0].path)} ({len(self.parts)} parts)"

    def _explained(self, exc: BaseException) -> BaseException:
        if isinstance(exc, PartError | BundleError) or not isinstance(exc, Exception):
            return exc
        if isinstance(exc, tarfile.TarError | EOFError):
            return BundleError(
                self._with_damage(f"{self._where()}: not a readable tar stream: {exc}")
            )
        return exc

    def _with_damage(self, message: str) -> str:
        """A damaged part explains most failures: name it."""
        damaged = self.payload.damaged_parts()
        return f"{damaged[0]} ({message})" if damaged else message
