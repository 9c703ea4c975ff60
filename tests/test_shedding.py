"""--max-downloads and --download-rate: an upgrade storm is refused at once, Kibana is not."""

from __future__ import annotations

import socket
import time
from urllib.parse import urlsplit

import httpx
import pytest

from builders import write_zip_package
from serving import fleetgap_serve

ARTIFACT = "/downloads/beats/elastic-agent/elastic-agent-9.1.0-linux-x86_64.tar.gz"
SIZE = 64 << 20  # far more than the socket buffers hold: a reader that stops holds the slot
LIMIT = 2


@pytest.fixture(scope="module", params=["granian", "uvicorn"])
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    data = tmp_path_factory.mktemp("data")
    write_zip_package(data / "packages", "alpha", "1.0.0")
    folder = data / "downloads" / "beats" / "elastic-agent"
    folder.mkdir(parents=True)
    with open(folder / ARTIFACT.rsplit("/", 1)[1], "wb") as out:
        out.truncate(SIZE)
    (folder / (ARTIFACT.rsplit("/", 1)[1] + ".sha512")).write_text("x  y\n")
    (data / "keys").mkdir()
    flags = ["--data", str(data), "-require-package-signatures=false", "--server", request.param]
    flags += ["--max-downloads", str(LIMIT)]
    with fleetgap_serve(*flags, cwd=data, log_dir=data) as running:
        yield running.url


def slow_reader(base: str, path: str) -> socket.socket:
    """A download that has started (status line read) and then reads no more."""
    address = urlsplit(base)
    sock = socket.create_connection((address.hostname, address.port))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    assert sock.recv(12).startswith(b"HTTP/1.1 200")
    return sock


def test_the_download_over_the_limit_is_refused_at_once_and_kibana_still_answers(
    server: str,
) -> None:
    zip_url = server + "/epr/alpha/alpha-1.0.0.zip"
    assert httpx.get(zip_url, timeout=10).status_code == 200  # now a known answer (fast path)
    held = [slow_reader(server, ARTIFACT) for _ in range(LIMIT)]
    try:
        refused = httpx.get(server + ARTIFACT, timeout=10)
        assert refused.status_code == 429
        assert refused.headers["retry-after"].isdigit()
        zip_refused = httpx.get(zip_url, timeout=10)
        assert zip_refused.status_code == 429
        # never shed: Kibana's queries, health, sidecars, the key URLs, HEAD
        assert httpx.get(server + "/search?kibana.version=9.1.0", timeout=10).status_code == 200
        assert httpx.get(server + "/health", timeout=10).status_code == 200
        assert httpx.get(server + ARTIFACT + ".sha512", timeout=10).status_code == 200
        assert httpx.get(server + "/GPG-KEY-elastic-agent", timeout=10).status_code == 404
        assert httpx.head(server + ARTIFACT, timeout=10).status_code == 200
    finally:
        for sock in held:
            sock.close()
    # the slots come back once the held downloads end
    deadline = time.monotonic() + 30
    while httpx.get(server + "/epr/alpha/alpha-1.0.0.zip", timeout=10).status_code == 429:
        assert time.monotonic() < deadline, "slots were not given back"
        time.sleep(0.2)


def test_a_rate_limited_download_is_complete(tmp_path) -> None:
    data = tmp_path
    folder = data / "downloads" / "beats"
    folder.mkdir(parents=True)
    body = bytes(range(256)) * 1024  # 256 KiB at 1 MB/s: about a quarter of a second
    (folder / "artifact.tar.gz").write_bytes(body)
    flags = ["--data", str(data), "--download-rate", "1MB"]
    with fleetgap_serve(*flags, cwd=data, log_dir=data) as running:
        response = httpx.get(running.url + "/downloads/beats/artifact.tar.gz", timeout=30)
        ranged = httpx.get(
            running.url + "/downloads/beats/artifact.tar.gz",
            headers={"Range": "bytes=1000-1999"},
            timeout=30,
        )
    assert (response.status_code, response.content) == (200, body)
    assert (ranged.status_code, ranged.content) == (206, body[1000:2000])
