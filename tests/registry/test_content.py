"""content.serve_content / serve_file: Go net/http ServeContent semantics over a real
uvicorn server (spec: epr-api §7, cases-headers.tsv)."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from fleetgap.registry.content import (
    Content,
    http_date,
    parse_http_date,
    serve_content,
    serve_file,
    zip_modtime,
)
from fleetgap.registry.mimetypes import content_type, sniff

from serving import serve_asgi

CACHE = [("Cache-Control", "max-age=600"), ("Cache-Control", "public")]
MTIME = 1_600_000_000.75  # Sun, 13 Sep 2020 12:26:40 GMT (+0.75 s, truncated by Go)
MTIME_TEXT = "Sun, 13 Sep 2020 12:26:40 GMT"
DATA = bytes(range(256)) * 40  # 10240 binary bytes
ZIP_TIME = (2021, 7, 29, 17, 26, 4)


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("served")
    (root / "data.bin").write_bytes(DATA)
    (root / "empty.bin").write_bytes(b"")
    (root / "stream.yml.hbs").write_bytes(b"paths:\n{{#each paths}}\n  - {{this}}\n{{/each}}\n")
    (root / "page").write_bytes(b"  <html><body>hi</body></html>")
    (root / "dir").mkdir()
    for path in root.iterdir():
        os.utime(path, (MTIME, MTIME))
    with zipfile.ZipFile(root / "pkg.zip", "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(zipfile.ZipInfo("pkg-1.0.0/data.bin", ZIP_TIME), DATA)
        archive.writestr(zipfile.ZipInfo("pkg-1.0.0/manifest.yml", ZIP_TIME), b"name: pkg\n")
    return root


def _app(root: Path, compat_root: Path) -> Starlette:
    archive = zipfile.ZipFile(root / "pkg.zip")
    archives: dict[Path, zipfile.ZipFile] = {}

    async def disk(request: Request) -> Response:
        headers = list(CACHE)
        if "etag" in request.query_params:
            headers.append(("ETag", request.query_params["etag"]))
        return await serve_file(request, root / request.path_params["name"], headers=headers)

    async def member(request: Request) -> Response:
        content = Content.from_zip(archive, "pkg-1.0.0/" + request.path_params["name"])
        return await serve_content(request, content, headers=CACHE)

    async def memory(request: Request) -> Response:
        content = Content.from_bytes("favicon.ico", b"\x00\x00\x01\x00icon", modtime=None)
        return await serve_content(request, content, headers=CACHE)

    async def package_file(request: Request) -> Response:
        """The registry's static route for the compat packages: directory or zip package."""
        name, version, path = (request.path_params[k] for k in ("name", "version", "path"))
        folder = compat_root / "testdata/package" / name / version
        if folder.is_dir():
            return await serve_file(request, folder / path, headers=CACHE)
        zip_path = compat_root / f"testdata/local-storage/{name}-{version}.zip"
        if zip_path not in archives:
            archives[zip_path] = zipfile.ZipFile(zip_path)
        content = Content.from_zip(archives[zip_path], f"{name}-{version}/{path}", name=path)
        return await serve_content(request, content, headers=CACHE)

    async def artifact(request: Request) -> Response:
        zip_name = request.path_params["file"]
        return await serve_file(request, compat_root / "testdata/local-storage" / zip_name)

    return Starlette(
        routes=[
            Route("/disk/{name:path}", disk, methods=["GET", "HEAD", "POST"]),
            Route("/zip/{name:path}", member, methods=["GET", "HEAD"]),
            Route("/memory", memory, methods=["GET", "HEAD"]),
            Route("/package/{name}/{version}/{path:path}", package_file, methods=["GET", "HEAD"]),
            Route("/epr/{ignored}/{file}", artifact, methods=["GET", "HEAD"]),
        ]
    )


@pytest.fixture(scope="module")
def client(files: Path, compat: Path) -> Iterator[httpx.Client]:
    with (
        serve_asgi(_app(files, compat / "package-registry"), lifespan="off") as base,
        httpx.Client(base_url=base) as http,
    ):
        yield http


# -- whole content ----------------------------------------------------------------------


def test_full_get_sends_body_type_length_last_modified_and_caller_headers(
    client: httpx.Client,
) -> None:
    response = client.get("/disk/data.bin")
    assert response.status_code == 200
    assert response.content == DATA
    assert response.headers["content-type"] == "application/octet-stream"  # sniffed binary
    assert response.headers["content-length"] == str(len(DATA))
    assert response.headers["accept-ranges"] == "bytes"
    assert response.headers["last-modified"] == MTIME_TEXT
    assert response.headers.get_list("cache-control") == ["max-age=600", "public"]
    assert "etag" not in response.headers


def test_head_sends_the_same_headers_without_a_body(client: httpx.Client) -> None:
    response = client.head("/disk/data.bin")
    assert response.status_code == 200
    assert response.content == b""
    assert response.headers["content-length"] == str(len(DATA))
    assert response.headers["accept-ranges"] == "bytes"
    assert response.headers["last-modified"] == MTIME_TEXT


def test_zip_member_is_served_with_its_zip_time(client: httpx.Client) -> None:
    response = client.get("/zip/data.bin")
    assert response.status_code == 200
    assert response.content == DATA
    assert response.headers["last-modified"] == "Thu, 29 Jul 2021 17:26:04 GMT"
    assert response.headers["content-length"] == str(len(DATA))


def test_unknown_modtime_gives_no_last_modified(client: httpx.Client) -> None:
    response = client.get("/memory")
    assert response.status_code == 200
    assert response.headers["content-type"] == "image/x-icon"
    assert "last-modified" not in response.headers
    assert response.content == b"\x00\x00\x01\x00icon"


def test_missing_file_and_directory_are_go_404s_without_cache_headers(
    client: httpx.Client,
) -> None:
    for path in ("/disk/nope.txt", "/disk/dir"):
        response = client.get(path)
        assert response.status_code == 404
        assert response.text == "404 page not found\n"
        assert response.headers["content-type"] == "text/plain; charset=utf-8"
        assert response.headers["x-content-type-options"] == "nosniff"
        assert "cache-control" not in response.headers


# -- ranges -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "start", "end"),
    [
        ("bytes=10-19", 10, 19),
        ("bytes=-5", len(DATA) - 5, len(DATA) - 1),
        ("bytes=10000-", 10000, len(DATA) - 1),
        ("bytes=10000-99999", 10000, len(DATA) - 1),  # end clipped to the size
        ("bytes= 0 - 0", 0, 0),
        ("bytes=0-0,", 0, 0),
    ],
)
def test_single_range_is_a_206_with_content_range(
    client: httpx.Client, header: str, start: int, end: int
) -> None:
    for path in ("/disk/data.bin", "/zip/data.bin"):
        response = client.get(path, headers={"Range": header})
        assert response.status_code == 206, (path, header)
        assert response.content == DATA[start : end + 1]
        assert response.headers["content-range"] == f"bytes {start}-{end}/{len(DATA)}"
        assert response.headers["content-length"] == str(end - start + 1)
        assert response.headers["content-type"] == "application/octet-stream"
        assert response.headers.get_list("cache-control") == ["max-age=600", "public"]


def test_multiple_ranges_are_go_multipart_byteranges(client: httpx.Client) -> None:
    for path in ("/disk/data.bin", "/zip/data.bin"):
        response = client.get(path, headers={"Range": "bytes=0-4,100-109,-3"})
        assert response.status_code == 206
        match = re.fullmatch(
            r"multipart/byteranges; boundary=([0-9a-f]{60})", response.headers["content-type"]
        )
        assert match, response.headers["content-type"]
        boundary = match.group(1)
        size = len(DATA)
        expected = (
            f"--{boundary}\r\nContent-Range: bytes 0-4/{size}\r\n"
            "Content-Type: application/octet-stream\r\n\r\n".encode()
            + DATA[0:5]
            + f"\r\n--{boundary}\r\nContent-Range: bytes 100-109/{size}\r\n"
            "Content-Type: application/octet-stream\r\n\r\n".encode()
            + DATA[100:110]
            + f"\r\n--{boundary}\r\nContent-Range: bytes {size - 3}-{size - 1}/{size}\r\n"
            "Content-Type: application/octet-stream\r\n\r\n".encode()
            + DATA[-3:]
            + f"\r\n--{boundary}--\r\n".encode()
        )
        assert response.content == expected
        assert response.headers["content-length"] == str(len(expected))
        assert "content-range" not in response.headers


def test_multipart_length_is_announced_on_head(client: httpx.Client) -> None:
    get = client.get("/disk/data.bin", headers={"Range": "bytes=0-4,100-109"})
    head = client.head("/disk/data.bin", headers={"Range": "bytes=0-4,100-109"})
    assert head.status_code == 206
    assert head.content == b""
    assert head.headers["content-length"] == get.headers["content-length"]


def test_range_starting_past_the_end_is_416_without_cache_or_last_modified(
    client: httpx.Client,
) -> None:
    response = client.get("/disk/data.bin", headers={"Range": "bytes=10240-20000"})
    assert response.status_code == 416
    assert response.headers["content-range"] == f"bytes */{len(DATA)}"
    assert response.text == "invalid range: failed to overlap\n"
    assert response.headers["content-type"] == "text/plain; charset=utf-8"
    assert response.headers["x-content-type-options"] == "nosniff"
    assert "cache-control" not in response.headers
    assert "last-modified" not in response.headers
    assert "accept-ranges" not in response.headers


@pytest.mark.parametrize("header", ["bytes=a-b", "bytes=5-1", "items=0-1", "bytes=--5", "bytes=1"])
def test_malformed_range_is_416_invalid_range(client: httpx.Client, header: str) -> None:
    response = client.get("/disk/data.bin", headers={"Range": header})
    assert response.status_code == 416
    assert response.text == "invalid range\n"
    assert "content-range" not in response.headers


def test_ranges_adding_up_to_more_than_the_file_are_ignored(client: httpx.Client) -> None:
    response = client.get("/disk/data.bin", headers={"Range": "bytes=0-9000,100-9000"})
    assert response.status_code == 200
    assert response.content == DATA


def test_range_on_an_empty_file_is_ignored(client: httpx.Client) -> None:
    response = client.get("/disk/empty.bin", headers={"Range": "bytes=0-10"})
    assert response.status_code == 200
    assert response.content == b""
    assert response.headers["content-length"] == "0"


def test_if_range_with_the_modification_date_keeps_the_range(client: httpx.Client) -> None:
    headers = {"Range": "bytes=0-9", "If-Range": MTIME_TEXT}
    assert client.get("/disk/data.bin", headers=headers).status_code == 206


@pytest.mark.parametrize("if_range", ["Sun, 13 Sep 2020 12:26:41 GMT", '"some-etag"', "junk"])
def test_if_range_mismatch_sends_the_whole_file(client: httpx.Client, if_range: str) -> None:
    response = client.get("/disk/data.bin", headers={"Range": "bytes=0-9", "If-Range": if_range})
    assert response.status_code == 200
    assert response.content == DATA


def test_if_range_with_a_matching_strong_etag_keeps_the_range(client: httpx.Client) -> None:
    headers = {"Range": "bytes=0-9", "If-Range": '"v1"'}
    response = client.get("/disk/data.bin", params={"etag": '"v1"'}, headers=headers)
    assert response.status_code == 206
    assert response.headers["etag"] == '"v1"'


# -- conditional requests ---------------------------------------------------------------


def test_if_modified_since_at_or_after_mtime_is_304(client: httpx.Client) -> None:
    for since in (MTIME_TEXT, http_date(time.time())):
        response = client.get("/disk/data.bin", headers={"If-Modified-Since": since})
        assert response.status_code == 304
        assert response.content == b""
        assert response.headers["last-modified"] == MTIME_TEXT
        assert response.headers.get_list("cache-control") == ["max-age=600", "public"]
        assert "content-type" not in response.headers
        assert "content-length" not in response.headers


@pytest.mark.parametrize(
    "since", ["Sun, 13 Sep 2020 12:26:39 GMT", "Mon, 01 Jan 0001 00:00:00 GMT", "garbage"]
)
def test_if_modified_since_before_mtime_or_invalid_is_200(client: httpx.Client, since: str) -> None:
    response = client.get("/disk/data.bin", headers={"If-Modified-Since": since})
    assert response.status_code == 200
    assert response.content == DATA


def test_if_modified_since_is_ignored_for_post(client: httpx.Client) -> None:
    response = client.post("/disk/data.bin", headers={"If-Modified-Since": MTIME_TEXT})
    assert response.status_code == 200


def test_if_unmodified_since_before_mtime_is_412(client: httpx.Client) -> None:
    response = client.get(
        "/disk/data.bin", headers={"If-Unmodified-Since": "Sun, 13 Sep 2020 12:26:39 GMT"}
    )
    assert response.status_code == 412
    assert response.content == b""
    assert response.headers["content-length"] == "0"
    assert "content-type" not in response.headers
    assert response.headers.get_list("cache-control") == ["max-age=600", "public"]
    ok = client.get("/disk/data.bin", headers={"If-Unmodified-Since": MTIME_TEXT})
    assert ok.status_code == 200


def test_if_match_without_an_etag_fails_unless_star(client: httpx.Client) -> None:
    assert client.get("/disk/data.bin", headers={"If-Match": '"x"'}).status_code == 412
    assert client.get("/disk/data.bin", headers={"If-Match": "*"}).status_code == 200
    matching = client.get("/disk/data.bin", params={"etag": '"x"'}, headers={"If-Match": '"x"'})
    assert matching.status_code == 200


def test_if_none_match_star_is_304_and_takes_precedence_over_if_modified_since(
    client: httpx.Client,
) -> None:
    assert client.get("/disk/data.bin", headers={"If-None-Match": "*"}).status_code == 304
    # Without an ETag only "*" matches; a present If-None-Match disables If-Modified-Since.
    headers = {"If-None-Match": '"abc"', "If-Modified-Since": MTIME_TEXT}
    assert client.get("/disk/data.bin", headers=headers).status_code == 200
    assert client.post("/disk/data.bin", headers={"If-None-Match": "*"}).status_code == 412


def test_if_none_match_with_the_etag_is_304_without_last_modified(client: httpx.Client) -> None:
    response = client.get(
        "/disk/data.bin", params={"etag": '"v1"'}, headers={"If-None-Match": 'W/"v1"'}
    )
    assert response.status_code == 304
    assert response.headers["etag"] == '"v1"'
    assert "last-modified" not in response.headers


# -- content types ----------------------------------------------------------------------


def test_content_type_is_sniffed_for_unknown_extensions(client: httpx.Client) -> None:
    assert client.get("/disk/stream.yml.hbs").headers["content-type"] == (
        "text/plain; charset=utf-8"
    )
    assert client.get("/disk/page").headers["content-type"] == "text/html; charset=utf-8"
    assert client.get("/zip/manifest.yml").headers["content-type"] == "text/yaml; charset=UTF-8"


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("manifest.yml", "text/yaml; charset=UTF-8"),
        ("docs/README.md", "text/markdown; charset=utf-8"),
        ("img/kibana-envoyproxy.jpg", "image/jpeg"),
        ("img/a.JPEG", "image/jpeg"),
        ("img/icon.png", "image/png"),
        ("img/logo.svg", "image/svg+xml"),
        ("kibana/dashboard/x.json", "application/json"),
        ("example-1.0.1.zip", "application/zip"),
        ("favicon.ico", "image/x-icon"),
        ("example-1.0.1.zip.sig", "application/pgp-signature"),
        ("x.html", "text/html; charset=utf-8"),
        ("x.css", "text/css; charset=utf-8"),
        ("x.js", "text/javascript; charset=utf-8"),
        ("x.xml", "text/xml; charset=utf-8"),
        ("x.gif", "image/gif"),
        ("x.webp", "image/webp"),
        ("x.pdf", "application/pdf"),
        ("x.wasm", "application/wasm"),
        ("notes.txt", "text/plain; charset=utf-8"),
        ("data.csv", "text/csv; charset=utf-8"),
        ("a.tar.gz", "application/gzip"),
    ],
)
def test_content_type_by_extension(name: str, expected: str) -> None:
    assert content_type(name, None) == expected


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"hello: world\n", "text/plain; charset=utf-8"),
        (b"", "text/plain; charset=utf-8"),
        (b"\x00\x01binary", "application/octet-stream"),
        (b"\n <!DOCTYPE html><html>", "text/html; charset=utf-8"),
        (b"<p>para</p>", "text/html; charset=utf-8"),
        (b"<?xml version='1.0'?><a/>", "text/xml; charset=utf-8"),
        (b"\x89PNG\r\n\x1a\n....", "image/png"),
        (b"\xff\xd8\xff\xe0", "image/jpeg"),
        (b"GIF89a...", "image/gif"),
        (b"PK\x03\x04rest", "application/zip"),
        (b"\x1f\x8b\x08\x00", "application/x-gzip"),
        (b"%PDF-1.7", "application/pdf"),
        (b"\xef\xbb\xbfhello", "text/plain; charset=utf-8"),
    ],
)
def test_sniffing_follows_go_detect_content_type(data: bytes, expected: str) -> None:
    assert sniff(data) == expected


# -- dates ------------------------------------------------------------------------------


def test_http_dates_parse_go_formats_including_year_one() -> None:
    assert parse_http_date(MTIME_TEXT) == 1_600_000_000
    assert parse_http_date("Sunday, 13-Sep-20 12:26:40 GMT") == 1_600_000_000
    assert parse_http_date("Sun Sep 13 12:26:40 2020") == 1_600_000_000
    assert parse_http_date("Sun Sep  3 12:26:40 2020") == 1_600_000_000 - 10 * 86400
    assert parse_http_date("Mon, 01 Jan 0001 00:00:00 GMT") == -62135596800
    assert parse_http_date("Sun, 31 Feb 2020 12:26:40 GMT") is None
    assert parse_http_date("2020-09-13T12:26:40Z") is None
    assert http_date(-62135596800) == "Mon, 01 Jan 0001 00:00:00 GMT"


def test_zip_time_prefers_the_extended_timestamp_field() -> None:
    info = zipfile.ZipInfo("a", (2020, 1, 1, 0, 0, 0))
    assert zip_modtime(info) == 1577836800.0
    info.extra = b"\x55\x54\x05\x00\x01" + (1_600_000_000).to_bytes(4, "little")
    assert zip_modtime(info) == 1_600_000_000.0


# -- the Go registry's own header assertions (cases-headers.tsv) ------------------------


def _header_cases(compat: Path) -> list[list[str]]:
    rows = (compat / "package-registry/cases-headers.tsv").read_text().splitlines()
    cases = [row.split("\t") for row in rows if row.strip()]
    wanted = ("/package/example/", "/epr/example/example-1.0.1.zip")
    return [case for case in cases if case[1].startswith(wanted)]


def test_cases_headers_tsv_static_rows(client: httpx.Client, compat: Path) -> None:
    cases = _header_cases(compat)
    assert len(cases) >= 14
    for method, url, request_header, status, header, expected in cases:
        headers = {}
        if request_header != "-":
            key, _, value = request_header.partition(": ")
            if value == "<now, RFC1123 GMT>":
                value = http_date(time.time())
            headers[key] = value
        response = client.request(method, url, headers=headers)
        assert response.status_code == int(status), (url, request_header)
        if header == "-":
            continue
        got = response.headers.get(header)
        if expected == "<non-empty>":
            assert got, (url, header)
            continue
        reassemble = re.search(r"reassemble (\S+)\)", expected)
        if reassemble:
            assert got == "bytes"
            golden = (compat / "package-registry" / reassemble.group(1)).read_bytes()
            assert _download_in_ranges(client, url, int(response.headers["content-length"]))
            assert _download_in_ranges(client, url, len(golden)) == golden
            continue
        assert got == expected, (url, header)


def _download_in_ranges(client: httpx.Client, url: str, length: int) -> bytes:
    """TestRangeDownloads: 100 KiB steps, inclusive end = start + 102400 capped at length."""
    body = b""
    start = 0
    while start < length:
        end = min(start + 102400, length)
        response = client.get(url, headers={"Range": f"bytes={start}-{end}"})
        assert response.status_code == 206
        body += response.content
        start = end + 1
    return body


# -- Granian: a whole file goes out through http.response.pathsend -----------------------

_GRANIAN_APP = """
from starlette.applications import Starlette
from starlette.routing import Route
from fleetgap.registry.content import serve_file

async def disk(request):
    return await serve_file(request, {path!r}, headers=[("Cache-Control", "public")])

async def ext(request):
    from starlette.responses import PlainTextResponse
    return PlainTextResponse(str("http.response.pathsend" in request.scope.get("extensions", {{}})))

app = Starlette(routes=[Route("/file", disk, methods=["GET", "HEAD"]), Route("/ext", ext)])
"""


def test_granian_serves_the_whole_file_with_pathsend(files: Path, tmp_path: Path) -> None:
    (tmp_path / "pathsend_app.py").write_text(_GRANIAN_APP.format(path=str(files / "data.bin")))
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = [sys.executable, "-m", "granian", "--interface", "asgi", "--host", "127.0.0.1"]
    command += ["--port", str(port), "--workers", "1", "--no-ws", "pathsend_app:app"]
    process = subprocess.Popen(
        command, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}") as http:
            deadline = time.monotonic() + 30
            while True:
                try:
                    uses_pathsend = http.get("/ext").text
                    break
                except httpx.TransportError:
                    if time.monotonic() > deadline or process.poll() is not None:
                        raise
                    time.sleep(0.1)
            assert uses_pathsend == "True"
            response = http.get("/file")
            assert response.status_code == 200
            assert response.content == DATA
            assert response.headers["content-length"] == str(len(DATA))
            assert response.headers["last-modified"] == MTIME_TEXT
            head = http.head("/file")
            assert head.status_code == 200
            assert head.content == b""
            assert head.headers["content-length"] == str(len(DATA))
            ranged = http.get("/file", headers={"Range": "bytes=5-9"})
            assert ranged.status_code == 206
            assert ranged.content == DATA[5:10]
    finally:
        process.terminate()
        process.wait(10)
