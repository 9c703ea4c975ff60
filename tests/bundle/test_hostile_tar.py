"""Hostile bundle files, built here byte by byte: a part count or a tar extended header
beyond sane limits is refused in one line before anything is allocated or parsed
(tarfile before CPython 3.11.10 parses pax records in quadratic time, CVE-2024-6232)."""

from __future__ import annotations

import hashlib
import tarfile
import tracemalloc
from pathlib import Path

import pytest
from click.testing import CliRunner

from fleetgap.bundle.parts import MAX_PARTS, Trailer
from fleetgap.bundle.tar_headers import MAX_CHAINED_HEADERS, MAX_EXTENDED_HEADER
from fleetgap.cli import main

BUNDLE_ID = "ab" * 16


def bundle_file(path: Path, payload: bytes, part: int = 1, parts: int = 1) -> Path:
    """`payload` with a valid trailer: the part's own SHA-256 checks out."""
    digest = hashlib.sha256(payload).hexdigest()
    trailer = Trailer(BUNDLE_ID, part, parts, len(payload), digest).encode()
    path.write_bytes(payload + trailer)
    return path


def header(name: str, kind: bytes, size: int, fmt: int = tarfile.USTAR_FORMAT) -> bytes:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.size = size
    return info.tobuf(format=fmt)


def padded(data: bytes) -> bytes:
    return data + b"\0" * (-len(data) % 512)


def pax_records(total: int) -> bytes:
    """Well-formed pax records (`LEN key=value\\n`) filling `total` bytes."""
    record = b"100 comment=" + b"a" * 87 + b"\n"
    assert len(record) == 100
    return record * (total // 100)


def verify(*files: Path):
    return CliRunner().invoke(main, ["bundle", "verify", *map(str, files), "--allow-unsigned"])


def one_error_line(result) -> str:
    assert result.exit_code == 1, (result.exit_code, result.output[:2000], result.exception)
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, result.output[:2000]
    assert lines[0].startswith("error: ")
    return lines[0]


def test_a_huge_pax_header_is_refused_before_it_is_read(tmp_path: Path) -> None:
    size = 64 << 20
    payload = header("././@PaxHeader", tarfile.XHDTYPE, size) + padded(pax_records(size))
    payload += header("manifest.json", tarfile.REGTYPE, 0) + b"\0" * 1024
    path = bundle_file(tmp_path / "b.bundle", payload)
    del payload
    tracemalloc.start()
    try:
        result = verify(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    line = one_error_line(result)
    assert f"a pax header of {size} bytes" in line and str(MAX_EXTENDED_HEADER) in line
    assert peak < 16 << 20  # the 64 MiB header was never held in memory


def test_a_pax_header_just_over_the_limit_is_not_parsed(tmp_path: Path) -> None:
    """CVE-2024-6232's shape: a run of digits, which tarfile's `\\d+ hdrcharset=` search
    rescans from every position (quadratic before CPython 3.11.10)."""
    body = b"1" * (MAX_EXTENDED_HEADER + 1)
    payload = header("././@PaxHeader", tarfile.XHDTYPE, len(body)) + padded(body)
    payload += b"\0" * 1024
    line = one_error_line(verify(bundle_file(tmp_path / "b.bundle", payload)))
    assert f"a pax header of {len(body)} bytes" in line


def test_a_huge_gnu_long_name_is_refused(tmp_path: Path) -> None:
    size = 1 << 30  # announced; the file does not even hold it
    payload = header("././@LongLink", tarfile.GNUTYPE_LONGNAME, size, tarfile.GNU_FORMAT)
    payload += b"x" * 4096 + b"\0" * 1024
    line = one_error_line(verify(bundle_file(tmp_path / "b.bundle", payload)))
    assert f"a GNU long name header of {size} bytes" in line


def test_a_chain_of_extended_headers_is_refused(tmp_path: Path) -> None:
    """Each pax header makes tarfile recurse for the next: thousands end in RecursionError."""
    record = b"20 comment=chained\n"
    one = header("././@PaxHeader", tarfile.XHDTYPE, len(record)) + padded(record)
    payload = one * 5000 + header("manifest.json", tarfile.REGTYPE, 0) + b"\0" * 1024
    line = one_error_line(verify(bundle_file(tmp_path / "b.bundle", payload)))
    assert f"more than {MAX_CHAINED_HEADERS} extended headers in a row" in line


def test_a_sparse_member_is_refused(tmp_path: Path) -> None:
    payload = header("manifest.json", tarfile.GNUTYPE_SPARSE, 10, tarfile.GNU_FORMAT)
    payload += b"\0" * 2048
    line = one_error_line(verify(bundle_file(tmp_path / "b.bundle", payload)))
    assert "is a sparse file" in line


@pytest.mark.parametrize("parts", [MAX_PARTS + 1, 10**9, 10**18])
def test_a_part_count_beyond_the_limit_is_refused_from_the_trailer(tmp_path, parts) -> None:
    path = bundle_file(tmp_path / "b.bundle.001", b"\0" * 1024, part=1, parts=parts)
    line = one_error_line(verify(path))
    assert f"its trailer claims {parts} parts (at most {MAX_PARTS})" in line


def test_many_missing_parts_are_counted_not_listed(tmp_path: Path) -> None:
    path = bundle_file(tmp_path / "b.bundle.001", b"\0" * 1024, part=1, parts=MAX_PARTS)
    line = one_error_line(verify(path))
    assert f"has {MAX_PARTS} parts; missing: " in line
    assert f"and {MAX_PARTS - 1 - 10} more" in line
    assert len(line) < 1000
