"""Tar headers read with limits, before tarfile allocates or parses what they announce.

A bundle's tar is written by fleetgap (PAX format): an extended header holds at most a long
path and a large size, a few hundred bytes. tarfile itself reads an extended header (pax, or
a GNU long name) whole into memory, whatever size it claims; parses pax records in quadratic
time before CPython 3.11.10 (CVE-2024-6232); and follows a chain of extended headers by
recursion. So a hostile bundle is refused here first: an extended header over
MAX_EXTENDED_HEADER bytes, more than MAX_CHAINED_HEADERS of them before one member, and
sparse members (a bundle holds only plain files).
"""

from __future__ import annotations

import tarfile

# A long path and a size take a few hundred bytes. On CPython 3.11.7, 4 KiB of hostile pax
# header costs tarfile 0.14 s; 8 KiB 0.57 s, 64 KiB 38 s.
MAX_EXTENDED_HEADER = 4 << 10
MAX_CHAINED_HEADERS = 4  # a pax global header, a pax header and GNU long name/link at most


class TarHeaderError(tarfile.TarError):
    """A tar header beyond what a bundle can hold; the message says which limit."""


class BoundedTarInfo(tarfile.TarInfo):
    """Pass as `tarfile.open(..., tarinfo=BoundedTarInfo)`."""

    def _proc_pax(self, tar: tarfile.TarFile) -> tarfile.TarInfo:
        return self._extended(tar, "pax", super()._proc_pax)

    def _proc_gnulong(self, tar: tarfile.TarFile) -> tarfile.TarInfo:
        return self._extended(tar, "GNU long name", super()._proc_gnulong)

    def _proc_sparse(self, tar: tarfile.TarFile) -> tarfile.TarInfo:
        raise TarHeaderError(f"member {self.name!r} is a sparse file; a bundle holds only files")

    def _extended(self, tar: tarfile.TarFile, kind: str, proceed) -> tarfile.TarInfo:
        if self.size > MAX_EXTENDED_HEADER:
            raise TarHeaderError(
                f"a {kind} header of {self.size} bytes at offset {self.offset} "
                f"(at most {MAX_EXTENDED_HEADER})"
            )
        depth = getattr(tar, "_fleetgap_chained", 0)
        if depth >= MAX_CHAINED_HEADERS:
            raise TarHeaderError(
                f"more than {MAX_CHAINED_HEADERS} extended headers in a row at offset {self.offset}"
            )
        tar._fleetgap_chained = depth + 1  # type: ignore[attr-defined]
        try:
            return proceed(tar)
        finally:
            tar._fleetgap_chained = depth  # type: ignore[attr-defined]
