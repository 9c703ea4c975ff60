"""Serving DATA/downloads/ over a real uvicorn: ranges, headers, listing, no escapes."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import httpx
import pytest

from .conftest import serve_downloads

AGENT = "beats/elastic-agent/elastic-agent-8.14.1+build202406201002-linux-x86_64.tar.gz"
BODY = bytes(range(256)) * 4096  # 1 MiB, compressible enough that gzip would be tempting


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    downloads = root / "downloads"
    files = {
        AGENT: BODY,
        AGENT + ".sha512": b"ab" * 64 + b"  x\n",
        AGENT + ".asc": b"-----BEGIN PGP SIGNATURE-----\n",
        "beats/elastic-agent/elastic-agent-9.1.0-windows-x86_64.zip": b"PK",
        "beats/elastic-agent/elastic-agent-9.1.0-amd64.deb": b"!<arch>",
        "beats/elastic-agent/elastic-agent-9.1.0-x86_64.rpm": b"\xed\xab",
        "beats/elastic-agent/elastic-agent-9.1.0-windows-x86_64.msi": b"msi",
        "beats/elastic-agent/elastic-agent-9.1.0-linux-x86_64.tar.gz.part": b"partial",
        "beats/elastic-agent/.elastic-agent-9.1.0-linux-x86_64.tar.gz.x1.tmp": b"temp",
    }
    for relative, content in files.items():
        path = downloads / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
    (root / "secret.txt").write_text("outside the downloads root")
    (root / "keys").mkdir()
    os.symlink(root / "secret.txt", downloads / "beats" / "link-out")
    os.symlink(root / "keys", downloads / "beats" / "dir-out")
    _, server = serve_downloads(downloads)
    with server:
        yield server


def raw_get(server, target: str, method: str = "GET") -> tuple[int, bytes]:
    """Send the request line exactly as given (clients would normalise it)."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(f"{method} {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    status = int(data.split(b" ", 2)[1])
    return status, data.split(b"\r\n\r\n", 1)[1]


def test_get_returns_exact_bytes_length_and_no_encoding(served):
    with httpx.Client(headers={"Accept-Encoding": "gzip, br"}) as client:
        response = client.get(f"{served.url}/downloads/{AGENT}")
    assert response.status_code == 200
    assert response.content == BODY
    assert response.headers["content-length"] == str(len(BODY))
    assert "content-encoding" not in response.headers
    assert response.headers["content-type"] == "application/gzip"
    assert response.headers["accept-ranges"] == "bytes"


def test_head_has_headers_and_no_body(served):
    status, body = raw_get(served, f"/downloads/{AGENT}", "HEAD")
    assert status == 200 and body == b""
    response = httpx.head(f"{served.url}/downloads/{AGENT}")
    assert response.headers["content-length"] == str(len(BODY))


def test_range_requests_and_if_range(served):
    url = f"{served.url}/downloads/{AGENT}"
    with httpx.Client() as client:
        part = client.get(url, headers={"Range": "bytes=1000-"})
        assert part.status_code == 206
        assert part.content == BODY[1000:]
        assert part.headers["content-range"] == f"bytes 1000-{len(BODY) - 1}/{len(BODY)}"
        assert part.headers["content-length"] == str(len(BODY) - 1000)
        etag = part.headers["etag"]
        assert (
            client.get(url, headers={"Range": "bytes=0-9", "If-Range": etag}).content == BODY[:10]
        )
        stale = client.get(url, headers={"Range": "bytes=0-9", "If-Range": '"other"'})
        assert stale.status_code == 200 and stale.content == BODY
        beyond = client.get(url, headers={"Range": f"bytes={len(BODY)}-"})
        assert beyond.status_code == 416
        assert beyond.headers["content-range"] == f"bytes */{len(BODY)}"


@pytest.mark.parametrize(
    "suffix, media_type",
    [
        (".sha512", "text/plain; charset=utf-8"),
        (".asc", "application/pgp-signature"),
    ],
)
def test_sidecar_content_types(served, suffix, media_type):
    response = httpx.get(f"{served.url}/downloads/{AGENT}{suffix}")
    assert response.status_code == 200
    assert response.headers["content-type"] == media_type


@pytest.mark.parametrize(
    "name, media_type",
    [
        ("elastic-agent-9.1.0-windows-x86_64.zip", "application/zip"),
        ("elastic-agent-9.1.0-amd64.deb", "application/vnd.debian.binary-package"),
        ("elastic-agent-9.1.0-x86_64.rpm", "application/x-rpm"),
        ("elastic-agent-9.1.0-windows-x86_64.msi", "application/x-msi"),
    ],
)
def test_package_content_types(served, name, media_type):
    response = httpx.get(f"{served.url}/downloads/beats/elastic-agent/{name}")
    assert response.headers["content-type"] == media_type


def test_plus_is_literal_and_percent_2b_is_the_same_file(served):
    encoded = AGENT.replace("+", "%2B")
    assert raw_get(served, f"/downloads/{AGENT}")[1] == BODY
    assert raw_get(served, f"/downloads/{encoded}")[1] == BODY
    assert raw_get(served, "/downloads/" + AGENT.replace("+", " ").replace(" ", "%20"))[0] == 404


def test_directory_listing_is_plain_html_without_work_files(served):
    response = httpx.get(f"{served.url}/downloads/beats/elastic-agent/")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    text = response.text
    assert 'href="elastic-agent-8.14.1+build202406201002-linux-x86_64.tar.gz"' in text
    assert "elastic-agent-9.1.0-windows-x86_64.zip" in text
    assert ".part" not in text and ".tmp" not in text
    assert 'href="../"' in text
    root = httpx.get(f"{served.url}/downloads/").text
    assert 'href="beats/"' in root


def test_directory_without_slash_redirects(served):
    response = httpx.get(f"{served.url}/downloads/beats")
    assert response.status_code == 301
    assert response.headers["location"].endswith("/downloads/beats/")


@pytest.mark.parametrize(
    "target",
    [
        "/downloads/../secret.txt",
        "/downloads/beats/../../secret.txt",
        "/downloads/%2e%2e/secret.txt",
        "/downloads/%2E%2E%2Fsecret.txt",
        "/downloads/beats%2f..%2f..%2fsecret.txt",
        "/downloads/%252e%252e/secret.txt",
        "/downloads/..%5csecret.txt",
        "/downloads/beats/link-out",
        "/downloads/beats/dir-out/",
        "/downloads/%00",
        "/downloads//etc/passwd",
        "/downloads/beats/elastic-agent/elastic-agent-9.1.0-linux-x86_64.tar.gz.part",
        "/downloads/beats/elastic-agent/.elastic-agent-9.1.0-linux-x86_64.tar.gz.x1.tmp",
        "/downloads/beats/elastic-agent/missing.tar.gz",
    ],
)
def test_no_escape_and_no_work_file_is_served(served, target):
    status, body = raw_get(served, target)
    assert status in (400, 404), (target, status)
    assert b"outside the downloads root" not in body
    assert b"partial" not in body and b"temp" not in body


def test_only_get_and_head(served):
    assert httpx.post(f"{served.url}/downloads/{AGENT}").status_code == 405


def test_resolve_refuses_symlinked_root_escape(tmp_path):
    from fleetgap.artifacts.serving import _resolve

    (tmp_path / "root").mkdir()
    (tmp_path / "outside").write_text("x")
    os.symlink(tmp_path / "outside", tmp_path / "root" / "out")
    assert _resolve(tmp_path / "root", "out") is None
    assert _resolve(tmp_path / "root", "") == Path(tmp_path / "root")


def test_query_string_is_ignored_like_a_static_host(served):
    # spec: agent-artifacts §3.2 (the source's query ends up after the file name)
    response = httpx.get(f"{served.url}/downloads/{AGENT}.sha512?token=abc")
    assert response.status_code == 200


def test_a_file_with_a_trailing_slash_is_not_found(served):
    assert raw_get(served, f"/downloads/{AGENT}/")[0] == 404
