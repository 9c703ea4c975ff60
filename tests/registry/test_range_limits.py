"""Ranges are bounded (issue 17, item 10): at most MAX_RANGES ranges, sent in ascending
order with overlapping ones merged, and a multi-range request on a compressed zip member
reads the member once. Single ranges and Go's other rules stay as test_content.py has them.
"""

from __future__ import annotations

import io
import random
import re
import zipfile
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from fleetgap.registry.content import MAX_RANGES, Content, serve_content

from builders import package_files
from serving import fleetgap_serve, serve_asgi

# Compressible but not trivially: words drawn from a small vocabulary.
WORDS = [b"agent", b"fleet", b"kibana", b"registry", b"policy", b"stream", b"\n"]
MEMBER = b" ".join(random.Random(17).choice(WORDS) for _ in range(200_000))


def parts(response: httpx.Response) -> list[tuple[str, bytes]]:
    """(Content-Range, body) of each part of a multipart/byteranges answer."""
    boundary = re.fullmatch(
        r"multipart/byteranges; boundary=(\w+)", response.headers["content-type"]
    ).group(1)
    found = []
    for chunk in response.content.split(f"--{boundary}".encode())[1:-1]:
        head, _, body = chunk.partition(b"\r\n\r\n")
        content_range = re.search(rb"Content-Range: bytes (\S+)", head).group(1).decode()
        found.append((content_range, body.removesuffix(b"\r\n")))
    return found


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):
    data = tmp_path_factory.mktemp("data")
    packages = data / "packages"
    packages.mkdir()
    with zipfile.ZipFile(packages / "alpha-1.0.0.zip", "w", zipfile.ZIP_DEFLATED) as archive:
        for relative, text in package_files("alpha", "1.0.0").items():
            archive.writestr(f"alpha-1.0.0/{relative}", text)
        archive.writestr("alpha-1.0.0/docs/big.txt", MEMBER)
    downloads = data / "downloads" / "beats" / "elastic-agent"
    downloads.mkdir(parents=True)
    (downloads / "agent.tar.gz").write_bytes(MEMBER)
    flags = ["--data", str(data), "-require-package-signatures=false"]
    with fleetgap_serve(*flags, cwd=data, log_dir=data) as running:
        yield running.url


MEMBER_URL = "/package/alpha/1.0.0/docs/big.txt"


def test_too_many_ranges_are_ignored_for_the_whole_member(server: str) -> None:
    ranges = ",".join(f"{n}-{n}" for n in range(0, 8000, 2))  # 4,000 one-byte ranges
    response = httpx.get(server + MEMBER_URL, headers={"Range": "bytes=" + ranges})
    assert response.status_code == 200
    assert response.content == MEMBER


def test_up_to_the_limit_is_multipart(server: str) -> None:
    ranges = ",".join(f"{n * 10}-{n * 10}" for n in range(MAX_RANGES))
    response = httpx.get(server + MEMBER_URL, headers={"Range": "bytes=" + ranges})
    assert response.status_code == 206
    assert [body for _, body in parts(response)] == [
        MEMBER[n * 10 : n * 10 + 1] for n in range(MAX_RANGES)
    ]


def test_overlapping_ranges_are_merged_and_sent_in_order(server: str) -> None:
    size = len(MEMBER)
    response = httpx.get(
        server + MEMBER_URL, headers={"Range": "bytes=100-109,0-9,5-19,-3,104-105"}
    )
    assert response.status_code == 206
    assert parts(response) == [
        (f"0-19/{size}", MEMBER[0:20]),
        (f"100-109/{size}", MEMBER[100:110]),
        (f"{size - 3}-{size - 1}/{size}", MEMBER[-3:]),
    ]


def test_ranges_merging_into_one_are_a_single_range(server: str) -> None:
    response = httpx.get(server + MEMBER_URL, headers={"Range": "bytes=0-9,5-19"})
    assert response.status_code == 206
    assert response.headers["content-range"] == f"bytes 0-19/{len(MEMBER)}"
    assert response.content == MEMBER[:20]


def test_downloads_ignore_too_many_ranges_too(server: str) -> None:
    url = server + "/downloads/beats/elastic-agent/agent.tar.gz"
    ranges = ",".join(f"{n * 10}-{n * 10}" for n in range(MAX_RANGES + 1))
    response = httpx.get(url, headers={"Range": "bytes=" + ranges})
    assert response.status_code == 200
    assert response.content == MEMBER


class CountingFile(io.FileIO):
    """A zip file on disk that counts the bytes read from it."""

    read_bytes = 0

    def read(self, size: int = -1) -> bytes:
        data = super().read(size)
        CountingFile.read_bytes += len(data)
        return data

    def readinto(self, buffer) -> int:  # type: ignore[no-untyped-def,override]
        count = super().readinto(buffer)
        CountingFile.read_bytes += count or 0
        return count


def test_a_compressed_member_is_read_once_for_many_ranges(tmp_path: Path) -> None:
    path = tmp_path / "pkg.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("pkg-1.0.0/big.txt", MEMBER)
    archive = zipfile.ZipFile(CountingFile(path))
    compressed = archive.getinfo("pkg-1.0.0/big.txt").compress_size

    async def member(request: Request) -> Response:
        return await serve_content(request, Content.from_zip(archive, "pkg-1.0.0/big.txt"))

    app = Starlette(routes=[Route("/big.txt", member)])
    # from the end, then the start, alternately: each backward step restarted the inflater
    ranges = ",".join(f"-{n + 1},{n * 100}-{n * 100}" for n in range(MAX_RANGES // 2))
    with serve_asgi(app, lifespan="off") as base:
        CountingFile.read_bytes = 0
        response = httpx.get(base + "/big.txt", headers={"Range": "bytes=" + ranges})
    assert response.status_code == 206
    assert len(parts(response)) == MAX_RANGES // 2 + 1  # the suffixes merge into one
    assert CountingFile.read_bytes < compressed * 1.5
