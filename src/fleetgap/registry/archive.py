"""A directory package as a zip, made while it is sent (spec: epr-api §3.7).

Entries are every file and directory under the package, depth-first in lexical order,
under `<name>-<version>/`; directories end in `/`; no entry for the root; all deflated.
"""

from __future__ import annotations

import stat
import time
import zipfile
from collections.abc import Iterator

from fleetgap.packages.fs import DirectoryFS

CHUNK = 256 * 1024


class _Sink:
    """A write-only, unseekable stream whose bytes are taken out as they come."""

    def __init__(self) -> None:
        self._parts: list[bytes] = []

    def write(self, data: bytes) -> int:
        self._parts.append(bytes(data))
        return len(data)

    def flush(self) -> None:
        pass

    def take(self) -> bytes:
        data = b"".join(self._parts)
        self._parts.clear()
        return data


def zip_directory(fs: DirectoryFS, root_name: str) -> Iterator[bytes]:
    sink = _Sink()
    with zipfile.ZipFile(sink, "w", compression=zipfile.ZIP_DEFLATED) as archive:  # type: ignore[arg-type]
        for name, info in fs.walk():
            if name == ".":
                continue
            entry = zipfile.ZipInfo(f"{root_name}/{name}" + ("/" if info.is_dir else ""))
            entry.date_time = _date_time(info.mtime)
            entry.compress_type = zipfile.ZIP_DEFLATED
            if info.is_dir:
                entry.external_attr = (stat.S_IFDIR | 0o755) << 16 | 0x10
                archive.writestr(entry, b"")
            else:
                try:
                    source = fs.open(name)
                except FileNotFoundError:
                    continue  # a symlink leading outside the package is not archived
                entry.external_attr = (stat.S_IFREG | 0o644) << 16
                with source, archive.open(entry, "w") as target:
                    while chunk := source.read(CHUNK):
                        target.write(chunk)
                        if data := sink.take():
                            yield data
            if data := sink.take():
                yield data
    if data := sink.take():
        yield data


def _date_time(mtime: float | None) -> tuple[int, int, int, int, int, int]:
    moment = time.gmtime(mtime or 0)
    year = min(max(moment.tm_year, 1980), 2107)
    return (year, moment.tm_mon, moment.tm_mday, moment.tm_hour, moment.tm_min, moment.tm_sec)
