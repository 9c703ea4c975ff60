"""Bodies read as they are sent (a compressed zip member, ranges) are bounded per worker: a
client that takes nothing for SEND_DEADLINE is hung up on, and at most MAX_STREAMS are sent
at once (another gets 503 after STREAM_SLOT_WAIT). R2: 300 clients that asked for an 8 MB
member and never read held 430 MB of a worker, for as long as they liked."""

from __future__ import annotations

import random
import socket
import string
import time
from pathlib import Path

import httpx
import pytest

from fleetgap.config import Settings
from fleetgap.packages.index import LoadOptions, load_index
from fleetgap.registry import content
from fleetgap.registry.app import RegistryApp
from fleetgap.registry.holder import IndexHolder

from builders import package_files, write_zip_package
from serving import serve_asgi

MEMBER = "/package/big/1.0.0/docs/big.md"


@pytest.fixture
def registry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    text = "".join(random.Random(1).choices(string.ascii_letters, k=6 << 20))
    files = package_files("big", "1.0.0")
    files["docs/big.md"] = text
    write_zip_package(tmp_path / "packages", "big", "1.0.0", files)
    packages = (tmp_path / "packages",)
    settings = Settings(package_paths=packages, require_package_signatures=False)
    holder = IndexHolder(load_index(LoadOptions(paths=packages, require_signatures=False)))
    monkeypatch.setattr(content, "_STREAM_SLOTS", None)
    with serve_asgi(RegistryApp(settings, holder)) as url:
        yield url, len(text)


def stalled(url: str, path: str) -> socket.socket:
    """A client that asks for `path` and then reads nothing."""
    host, port = url.removeprefix("http://").split(":")
    client = socket.socket()
    client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    client.connect((host, int(port)))
    client.sendall(f"GET {path} HTTP/1.1\r\nHost: registry\r\n\r\n".encode())
    return client


def read_until_closed(client: socket.socket, limit: float = 30.0) -> int:
    client.settimeout(limit)
    received = 0
    while chunk := client.recv(1 << 16):
        received += len(chunk)
    return received


def test_a_client_that_takes_nothing_is_hung_up_on(registry, monkeypatch) -> None:
    url, size = registry
    monkeypatch.setattr(content, "SEND_DEADLINE", 1.0)
    client = stalled(url, MEMBER)
    try:
        time.sleep(3.0)  # well past the deadline, reading nothing
        received = read_until_closed(client)  # ends: the server closed the connection
    finally:
        client.close()
    assert received < size
    assert httpx.get(url + MEMBER, timeout=30).content.decode() != ""  # others still served


def test_streams_past_the_limit_wait_then_get_503(registry, monkeypatch) -> None:
    url, size = registry
    monkeypatch.setattr(content, "MAX_STREAMS", 1)
    monkeypatch.setattr(content, "STREAM_SLOT_WAIT", 0.5)
    client = stalled(url, MEMBER)  # holds the one slot
    try:
        time.sleep(0.5)
        busy = httpx.get(url + MEMBER, timeout=30)
        assert busy.status_code == 503
        assert busy.headers["retry-after"] == "5"
    finally:
        client.close()
    deadline = time.monotonic() + 30
    while (answer := httpx.get(url + MEMBER, timeout=30)).status_code == 503:
        assert time.monotonic() < deadline  # the slot comes back once the client is gone
        time.sleep(0.2)
    assert answer.status_code == 200 and len(answer.content) == size
