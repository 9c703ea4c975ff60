"""Bundle files on disk: the tar stream cut into parts, each ending in a 512-byte trailer.

A bundle is one tar stream (the payload). It is written as one file, or with `--split` as
FILE.001, FILE.002, …; every file ends in a trailer block that names the bundle, the part's
index and count, and the size and SHA-256 of the payload bytes it holds. So each file can be
checked on its own (`check_part`), and a damaged, truncated, missing or foreign part is
named before any payload is read. The trailer follows tar's end-of-archive blocks, which tar
readers stop at, so an unsplit bundle is still a plain tar (`tar tf FILE` lists it).
docs/bundle-format.md describes the trailer.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import json
import os
import re
from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from fleetgap.bundle.hashpipe import HashPipe
from fleetgap.errors import FleetgapError

TRAILER_SIZE = 512
TRAILER_MAGIC = b"FLEETGAP-BUNDLE-PART "
PART_FORMAT = "fleetgap-bundle-part"
_PART_SUFFIX = re.compile(r"\.(\d{3,})$")
_CHUNK = 1 << 20
# Refused in the trailer, before anything is counted or listed: `--split 100MB` of a 1 TB
# bundle makes 10,000 parts.
MAX_PARTS = 99_999
_LISTED = 10  # missing parts named in an error, the rest counted


class PartError(FleetgapError):
    """A bundle file that is damaged, truncated, missing or from another bundle."""


@dataclass(frozen=True)
class Trailer:
    bundle_id: str
    part: int  # 1-based
    parts: int
    payload_size: int
    payload_sha256: str

    def encode(self) -> bytes:
        body = json.dumps(
            {
                "format": PART_FORMAT,
                "format_version": 1,
                "bundle_id": self.bundle_id,
                "part": self.part,
                "parts": self.parts,
                "payload_size": self.payload_size,
                "payload_sha256": self.payload_sha256,
            },
            sort_keys=True,
            separators=(",", ":"),
        ).encode()
        block = TRAILER_MAGIC + body
        assert len(block) < TRAILER_SIZE
        return block.ljust(TRAILER_SIZE - 1, b" ") + b"\n"


@dataclass(frozen=True)
class Part:
    path: Path
    trailer: Trailer


def read_trailer(path: Path) -> Part:
    """The part's trailer, checked against the file's size; PartError naming the file."""
    try:
        size = path.stat().st_size
        with open(path, "rb") as handle:
            handle.seek(max(size - TRAILER_SIZE, 0))
            block = handle.read(TRAILER_SIZE)
    except FileNotFoundError:
        raise PartError(f"{path}: no such file") from None
    if size < TRAILER_SIZE:
        raise PartError(f"{path}: truncated or not a fleetgap bundle ({size} bytes)")
    trailer = _decode_trailer(block, path)
    if trailer.payload_size != size - TRAILER_SIZE:
        raise PartError(
            f"{path}: truncated or extended: holds {size - TRAILER_SIZE} payload bytes, its "
            f"trailer says {trailer.payload_size}; re-send this file"
        )
    return Part(path, trailer)


def _decode_trailer(block: bytes, path: Path) -> Trailer:
    damaged = PartError(
        f"{path}: no valid fleetgap bundle trailer at its end (truncated, damaged or not a "
        "bundle); re-send this file"
    )
    if not block.startswith(TRAILER_MAGIC) or not block.endswith(b"\n"):
        raise damaged
    body = block[len(TRAILER_MAGIC) : -1].rstrip(b" ")
    try:
        raw = json.loads(body)
    except ValueError:
        raise damaged from None
    expected_keys = {
        "format", "format_version", "bundle_id", "part", "parts", "payload_size",
        "payload_sha256",
    }  # fmt: skip
    if not isinstance(raw, dict) or set(raw) != expected_keys:
        raise damaged
    if raw["format"] != PART_FORMAT or raw["format_version"] != 1:
        raise damaged
    # The trailer is exactly what the writer makes: any other byte is damage.
    try:
        trailer = Trailer(
            raw["bundle_id"], raw["part"], raw["parts"], raw["payload_size"], raw["payload_sha256"]
        )
        if trailer.encode() != block:
            raise damaged
    except (TypeError, AssertionError):
        raise damaged from None
    if not all(type(n) is int for n in (trailer.part, trailer.parts, trailer.payload_size)):
        raise damaged
    if not 1 <= trailer.part <= trailer.parts:
        raise damaged
    if trailer.parts > MAX_PARTS:
        raise PartError(f"{path}: its trailer claims {trailer.parts} parts (at most {MAX_PARTS})")
    return trailer


def first_missing(found: Collection[int], parts: int) -> tuple[list[int], str]:
    """The first few missing part numbers, and " and N more" for the rest (or "")."""
    missing = (index for index in range(1, parts + 1) if index not in found)
    listed = list(itertools.islice(missing, _LISTED))
    rest = parts - len(found) - len(listed)
    return listed, f" and {rest} more" if rest > 0 else ""


def expand_paths(paths: Sequence[Path]) -> list[Path]:
    """FILE may name a split bundle by its stem: FILE.001, FILE.002, … are then used."""
    found: list[Path] = []
    for path in paths:
        path = Path(path)
        if not path.exists():
            siblings = sorted(
                p
                for p in path.parent.glob(f"{path.name}.*")
                if _PART_SUFFIX.search(p.name) and p.name[: -len(p.suffix)] == path.name
            )
            if siblings:
                found.extend(siblings)
                continue
        found.append(path)
    return found


def open_parts(paths: Sequence[Path]) -> list[Part]:
    """Every part of one bundle, in order: each file's trailer read, one bundle, none missing."""
    parts = [read_trailer(path) for path in expand_paths(paths)]
    if not parts:
        raise PartError("no bundle file given")
    first = parts[0].trailer
    for part in parts[1:]:
        if part.trailer.bundle_id != first.bundle_id:
            raise PartError(
                f"{part.path} belongs to bundle {part.trailer.bundle_id}, but {parts[0].path} "
                f"to bundle {first.bundle_id}: parts of two different bundles"
            )
        if part.trailer.parts != first.parts:
            raise PartError(
                f"{part.path} says the bundle has {part.trailer.parts} parts, {parts[0].path} "
                f"says {first.parts}"
            )
    by_index: dict[int, Part] = {}
    for part in parts:
        if part.trailer.part in by_index:
            other = by_index[part.trailer.part]
            raise PartError(f"{part.path} and {other.path} are both part {part.trailer.part}")
        by_index[part.trailer.part] = part
    if len(by_index) != first.parts:
        listed, more = first_missing(by_index, first.parts)
        names = ", ".join(_expected_name(parts[0], i) for i in listed)
        raise PartError(
            f"bundle {first.bundle_id} has {first.parts} parts; missing part(s) "
            f"{', '.join(map(str, listed))}{more} ({names})"
        )
    return [by_index[i] for i in range(1, first.parts + 1)]


def _expected_name(known: Part, index: int) -> str:
    match = _PART_SUFFIX.search(known.path.name)
    if not match:
        return f"part {index}"
    width = len(match.group(1))
    return known.path.name[: match.start()] + f".{index:0{width}d}"


def check_part(part: Part) -> None:
    """Read the part's payload and compare its SHA-256 with the trailer's."""
    digest = hashlib.sha256()
    with open(part.path, "rb") as handle:
        remaining = part.trailer.payload_size
        while remaining:
            chunk = handle.read(min(_CHUNK, remaining))
            if not chunk:
                break
            digest.update(chunk)
            remaining -= len(chunk)
    if digest.hexdigest() != part.trailer.payload_sha256:
        raise PartError(damaged_message(part))


def damaged_message(part: Part) -> str:
    which = (
        f"part {part.trailer.part} of {part.trailer.parts}" if part.trailer.parts > 1 else "file"
    )
    return (
        f"{part.path}: damaged: its bytes do not match the SHA-256 in its trailer ({which}); "
        "re-send this file"
    )


class PayloadReader:
    """The payload of all parts as one read-only stream, each part's SHA-256 checked as its
    last byte is read (`PartError` then names the part). With `hashes`, the SHA-256 updates
    run on its worker beside the reads."""

    def __init__(self, parts: Sequence[Part], hashes: HashPipe | None = None) -> None:
        self.parts = list(parts)
        self._hashes = hashes
        self.position = 0
        self._index = 0
        self._handle = None
        self._remaining = 0
        self._digest = hashlib.sha256()
        self._current: Part | None = None

    def read(self, size: int = -1) -> bytes:
        if size is None or size < 0:
            size = 1 << 62
        out: list[bytes] = []
        wanted = size
        while wanted > 0:
            if not self._remaining and not self._next_part():
                break
            assert self._handle is not None
            chunk = self._handle.read(min(wanted, self._remaining, _CHUNK * 4))
            if not chunk:
                assert self._current is not None
                raise PartError(f"{self._current.path}: truncated while reading; re-send it")
            if self._hashes is not None:
                self._hashes.update(self._digest, chunk)
            else:
                self._digest.update(chunk)
            self._remaining -= len(chunk)
            wanted -= len(chunk)
            out.append(chunk)
            if not self._remaining:
                self._finish_part()
        data = b"".join(out)
        self.position += len(data)
        return data

    def drain(self) -> None:
        """Read to the end (checking every part); the bytes after the tar must be read too."""
        while self.read(_CHUNK * 4):
            pass

    def damaged_parts(self) -> list[str]:
        """After a failure: the remaining parts checked on their own (the current one too)."""
        problems: list[str] = []
        start = max(self._index - 1, 0)
        self.close()
        for part in self.parts[start:]:
            try:
                check_part(part)
            except PartError as exc:
                problems.append(str(exc))
        return problems

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None

    def _next_part(self) -> bool:
        self.close()
        if self._index >= len(self.parts):
            return False
        self._current = self.parts[self._index]
        self._index += 1
        self._handle = open(self._current.path, "rb")  # noqa: SIM115 (closed by close())
        self._remaining = self._current.trailer.payload_size
        self._digest = hashlib.sha256()
        if not self._remaining:
            self._finish_part()
        return True

    def _finish_part(self) -> None:
        assert self._current is not None
        if self._hashes is not None:
            self._hashes.wait()
        if self._digest.hexdigest() != self._current.trailer.payload_sha256:
            raise PartError(damaged_message(self._current))


class PartWriter:
    """A write-only stream that fills FILE (or FILE.001, FILE.002, … of at most `split` bytes
    each, trailer included), ending every part in its trailer. Files are written under hidden
    temporary names and renamed into place only by `finish`, so a failed write leaves no
    bundle behind."""

    def __init__(
        self, out: Path, bundle_id: str, split: int | None = None, hashes: HashPipe | None = None
    ) -> None:
        if split is not None and split <= TRAILER_SIZE:
            raise FleetgapError(f"--split must be more than {TRAILER_SIZE} bytes (the trailer)")
        self.out = Path(out)
        self.bundle_id = bundle_id
        self.split = split
        # a part is at most `split` bytes on disk: its payload leaves room for the trailer
        self._payload_limit = None if split is None else split - TRAILER_SIZE
        self.written = 0
        self._parts: list[tuple[Path, Trailer]] = []
        self._temporaries: list[Path] = []
        self._handle = None
        self._size = 0
        self._digest = hashlib.sha256()
        self._hashes = hashes  # None: hash in this thread

    def write(self, data: bytes) -> int:
        if self._hashes is not None and not isinstance(data, bytes):
            data = bytes(data)  # hashed later, on the worker: must not change meanwhile
        view = memoryview(data)
        while view:
            if self._handle is None:
                self._open_next()
            limit = self._payload_limit
            room = len(view) if limit is None else limit - self._size
            chunk = view[:room]
            assert self._handle is not None
            if self._hashes is not None:
                self._hashes.update(self._digest, chunk)
            else:
                self._digest.update(chunk)
            self._handle.write(chunk)
            self._size += len(chunk)
            self.written += len(chunk)
            view = view[len(chunk) :]
            if limit is not None and self._size >= limit:
                self._close_part()
        return len(data)

    def flush(self) -> None:
        pass

    def tell(self) -> int:
        return self.written

    def finish(self) -> list[Path]:
        """Close the last part, write every trailer with the final count, rename into place."""
        if self._handle is not None or not self._parts:
            if self._handle is None:
                self._open_next()
            self._close_part()
        count = len(self._parts)
        final: list[Path] = []
        for index, (tmp, trailer) in enumerate(self._parts, start=1):
            trailer = Trailer(self.bundle_id, index, count, trailer.payload_size,
                              trailer.payload_sha256)  # fmt: skip
            with open(tmp, "r+b") as handle:
                handle.seek(trailer.payload_size)
                handle.write(trailer.encode())
                handle.flush()
                os.fsync(handle.fileno())
            final.append(self._name(index))
        for (tmp, _), target in zip(self._parts, final, strict=True):
            os.replace(tmp, target)
        self._temporaries.clear()
        return final

    def abort(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None
        for tmp in self._temporaries:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()

    def _name(self, index: int) -> Path:
        if self.split is None:
            return self.out
        return self.out.with_name(f"{self.out.name}.{index:03d}")

    def _open_next(self) -> None:
        index = len(self._parts) + 1
        target = self._name(index)
        tmp = target.with_name(f".{target.name}.tmp")
        self._temporaries.append(tmp)
        self._handle = open(tmp, "wb")  # noqa: SIM115 (closed by _close_part/abort)
        self._size = 0
        self._digest = hashlib.sha256()

    def _close_part(self) -> None:
        assert self._handle is not None
        index = len(self._parts) + 1
        if self._hashes is not None:
            self._hashes.wait()
        trailer = Trailer(self.bundle_id, index, 0, self._size, self._digest.hexdigest())
        # placeholder count (0 is never valid); finish() writes the final trailers
        self._handle.write(b"\0" * TRAILER_SIZE)
        self._handle.close()
        self._handle = None
        self._parts.append((self._temporaries[-1], trailer))


@contextlib.contextmanager
def writing(
    out: Path, bundle_id: str, split: int | None, hashes: HashPipe | None = None
) -> Iterator[PartWriter]:
    writer = PartWriter(out, bundle_id, split, hashes)
    try:
        yield writer
    except BaseException:
        writer.abort()
        raise
