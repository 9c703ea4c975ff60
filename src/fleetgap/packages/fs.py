"""A package's files, from a directory or from a zip, with the Go registry's walk orders.

spec: epr-api §5.2. Paths are slash-separated and relative to the package root. Glob is
Go's `path.Match` per path level. A directory package lists entries depth-first in lexical
order; a zip package in archive (central directory) order, keeping the trailing `/` of
directory entries. Every name is checked: nothing may escape the package root.
"""

from __future__ import annotations

import os
import stat
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path, PurePosixPath
from typing import BinaryIO, Protocol

# Limits against zip bombs and hostile archives. A real integration package is a few MB.
MAX_ENTRIES = 100_000
MAX_TOTAL_UNCOMPRESSED = 4 * 1024**3
MAX_RATIO = 200  # uncompressed / compressed, for entries over RATIO_FLOOR
RATIO_FLOOR = 16 * 1024**2
MAX_READ = 64 * 1024**2  # the most fleetgap reads of one file into memory


class PackageFSError(ValueError):
    pass


@dataclass(frozen=True)
class FileInfo:
    is_dir: bool
    size: int
    mtime: float | None  # seconds since the epoch; None when unknown


class PackageFS(Protocol):
    def stat(self, name: str) -> FileInfo | None: ...
    def read(self, name: str) -> bytes: ...
    def open(self, name: str) -> BinaryIO: ...
    def glob(self, pattern: str) -> list[str]: ...
    def walk(self) -> Iterator[tuple[str, FileInfo]]: ...
    def close(self) -> None: ...


def match(pattern: str, name: str) -> bool:
    """Go `path.Match`: `*` and `?` never cross a `/`."""
    pattern_parts = pattern.split("/")
    name_parts = name.split("/")
    return len(pattern_parts) == len(name_parts) and _match_parts(pattern_parts, name_parts)


def _match_parts(pattern: list[str], name: list[str]) -> bool:
    return all(p == "*" or p == n or fnmatchcase(n, p) for p, n in zip(pattern, name, strict=True))


def read_limited(stream: BinaryIO, name: str) -> bytes:
    """All of `stream` (closed after), refusing more than MAX_READ bytes."""
    with stream:
        data = stream.read(MAX_READ + 1)
    if len(data) > MAX_READ:
        raise PackageFSError(f"{name}: larger than {MAX_READ} bytes")
    return data


def clean_relative(name: str) -> str | None:
    """The cleaned relative form of `name`, or None if it escapes the root."""
    name = name.replace("\\", "/")
    if name.startswith("/"):
        name = name.lstrip("/")
    parts: list[str] = []
    for part in name.split("/"):
        if part in ("", "."):
            continue
        if part == ".." or "\x00" in part:
            return None
        parts.append(part)
    return "/".join(parts) if parts else "."


class DirectoryFS:
    """The files under one package version directory."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._real_root = os.path.realpath(root)
        self._entries: list[tuple[str, FileInfo]] | None = None

    def _path(self, name: str) -> str | None:
        checked = self._checked(name)
        return None if checked is None else checked[0]

    def _checked(self, name: str) -> tuple[str, str] | None:
        """The file's path and its resolved path, if that stays inside the package."""
        relative = clean_relative(name)
        if relative is None:
            return None
        full = os.path.join(self._real_root, relative) if relative != "." else self._real_root
        real = os.path.realpath(full)
        # symlinks may not lead outside the package
        if real != self._real_root and not real.startswith(self._real_root + os.sep):
            return None
        return full, real

    def stat(self, name: str) -> FileInfo | None:
        path = self._path(name)
        if path is None:
            return None
        try:
            st = os.stat(path)
        except (OSError, ValueError):
            return None
        return FileInfo(stat.S_ISDIR(st.st_mode), st.st_size, st.st_mtime)

    def real_path(self, name: str) -> str | None:
        """The file's path with symlinks resolved (checked to stay inside the package): what
        is sent is what was checked, even if a link is changed afterwards."""
        checked = self._checked(name)
        return None if checked is None else checked[1]

    def read(self, name: str) -> bytes:
        return read_limited(self.open(name), name)

    def open(self, name: str) -> BinaryIO:
        path = self._path(name)
        if path is None or not os.path.isfile(path):
            raise FileNotFoundError(name)
        return open(path, "rb")  # noqa: SIM115 - the caller closes it

    def walk(self) -> Iterator[tuple[str, FileInfo]]:
        """`.` then every entry, depth-first, names sorted (Go `fs.WalkDir`)."""
        if self._entries is None:
            root = [(".", FileInfo(True, 0, None))]
            self._entries = root + list(self._walk(self._real_root, ""))
        return iter(self._entries)

    def _walk(self, directory: str, prefix: str) -> Iterator[tuple[str, FileInfo]]:
        try:
            entries = sorted(os.scandir(directory), key=lambda e: e.name)
        except OSError:
            return
        for entry in entries:
            name = prefix + entry.name
            try:
                is_dir = entry.is_dir(follow_symlinks=False)
                st = entry.stat(follow_symlinks=False)
            except OSError:
                continue
            yield name, FileInfo(is_dir, 0 if is_dir else st.st_size, st.st_mtime)
            if is_dir:
                yield from self._walk(entry.path, name + "/")

    def glob(self, pattern: str) -> list[str]:
        return [name for name, _ in self.walk() if match(pattern, name)]

    def close(self) -> None:
        pass


class ZipFS:
    """The files of a zip package, rooted at the folder that holds its manifest.yml."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            self._zip = zipfile.ZipFile(path)
        except (OSError, zipfile.BadZipFile, ValueError) as exc:
            raise PackageFSError(f"not a valid zip file: {exc}") from exc
        try:
            self._infos = self._zip.infolist()
            _check_archive(self._infos)
            self.root = _find_root(self._infos)
        except Exception:
            self._zip.close()
            raise
        prefix = self.root + "/"
        # (cleaned name split in parts, name as glob returns it) for every entry, in order
        self._glob_entries = [
            (info.filename.rstrip("/").split("/"), info.filename) for info in self._infos
        ]
        self._files: dict[str, zipfile.ZipInfo] = {}
        self._dirs: set[str] = {"."}
        for info in self._infos:
            name = info.filename.rstrip("/")
            if not name.startswith(prefix):
                continue
            relative = name[len(prefix) :]
            if info.is_dir():
                self._dirs.add(relative)
            else:
                self._files[relative] = info
            parts = relative.split("/")
            for i in range(1, len(parts)):
                self._dirs.add("/".join(parts[:i]))

    def stat(self, name: str) -> FileInfo | None:
        relative = clean_relative(name)
        if relative is None:
            return None
        info = self._files.get(relative)
        if info is not None:
            return FileInfo(False, info.file_size, _zip_mtime(info))
        if relative in self._dirs:
            explicit = self._dir_info(relative)
            return FileInfo(True, 0, _zip_mtime(explicit) if explicit else None)
        return None

    def _dir_info(self, relative: str) -> zipfile.ZipInfo | None:
        try:
            return self._zip.getinfo(f"{self.root}/{relative}/")
        except KeyError:
            return None

    def read(self, name: str) -> bytes:
        return read_limited(self.open(name), name)

    def open(self, name: str) -> BinaryIO:
        relative = clean_relative(name)
        info = self._files.get(relative) if relative else None
        if info is None:
            raise FileNotFoundError(name)
        return self._zip.open(info)  # type: ignore[return-value]

    def walk(self) -> Iterator[tuple[str, FileInfo]]:
        prefix = self.root + "/"
        for info in self._infos:
            if info.filename.startswith(prefix) and info.filename != prefix:
                name = info.filename[len(prefix) :]
                yield name, FileInfo(info.is_dir(), info.file_size, _zip_mtime(info))

    def glob(self, pattern: str) -> list[str]:
        wanted = [self.root, *pattern.split("/")]
        prefix = self.root + "/"
        return [
            name[len(prefix) :] if name.startswith(prefix) else name
            for parts, name in self._glob_entries
            if len(parts) == len(wanted) and _match_parts(wanted, parts)
        ]

    def close(self) -> None:
        self._zip.close()


def _zip_mtime(info: zipfile.ZipInfo) -> float | None:
    import calendar

    try:
        return float(calendar.timegm((*info.date_time, 0, 0, 0)))
    except (ValueError, OverflowError):
        return None


def _check_archive(infos: list[zipfile.ZipInfo]) -> None:
    if len(infos) > MAX_ENTRIES:
        raise PackageFSError(f"too many entries in archive ({len(infos)})")
    total = 0
    for info in infos:
        name = info.filename
        if name.startswith("/") or "\\" in name or clean_relative(name) != name.rstrip("/"):
            raise PackageFSError(f"entry {name!r} escapes the package root")
        mode = info.external_attr >> 16
        if stat.S_ISLNK(mode):
            raise PackageFSError(f"entry {name!r} is a symbolic link")
        total += info.file_size
        if total > MAX_TOTAL_UNCOMPRESSED:
            raise PackageFSError("archive expands to more than 4 GiB (zip bomb?)")
        if info.file_size > RATIO_FLOOR and info.file_size > MAX_RATIO * max(info.compress_size, 1):
            raise PackageFSError(f"entry {name!r} has a compression ratio over {MAX_RATIO}:1")


def _find_root(infos: list[zipfile.ZipInfo]) -> str:
    for info in infos:
        name = str(PurePosixPath(info.filename))
        parts = name.split("/")
        if len(parts) == 2 and parts[1] == "manifest.yml" and parts[0] not in ("", "."):
            return parts[0]
    raise PackageFSError("failed to determine root directory in package")
