"""The upgrade-key endpoint's upstream (`--pgp-upstream-url`) is hostile until proven a key:
one OpenPGP certificate or nothing is served and stored; no redirect leaves its origin; one
fetch at a time with a short deadline, on its own thread, so a silent upstream starves no
other route and SIGTERM still stops the server. Real servers on 127.0.0.1 only."""

from __future__ import annotations

import base64
import contextlib
import shutil
import signal
import socket
import ssl
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from fleetgap.config import sample_packages_path
from fleetgap.ops.certs import create_certificates
from fleetgap.pgp.armor import PUBLIC_KEY_BLOCK, dearmor, first_armored_block
from fleetgap.pgp.key_routes import key_routes
from fleetgap.pgp.keys import SecretKey

from pgp_servers import TLS, run_app
from serving import fleetgap_serve

PATH = "/api/agents/upgrades/9.1.0/pgp-public-key"


class SilentUpstream:
    """Accepts TCP connections and never answers: counts how many fetches reached it."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(128)
        self.accepted: list[socket.socket] = []
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}/GPG-KEY-elastic-agent"
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        with contextlib.suppress(OSError):
            while True:
                conn, _ = self.sock.accept()
                self.accepted.append(conn)

    def close(self) -> None:
        self.sock.close()
        for conn in self.accepted:
            conn.close()


@contextlib.contextmanager
def silent_upstream() -> Iterator[SilentUpstream]:
    upstream = SilentUpstream()
    try:
        yield upstream
    finally:
        upstream.close()


@contextlib.contextmanager
def fleet(data: Path, tls: TLS, **options) -> Iterator[httpx.Client]:
    app = Starlette(routes=key_routes(data, **options))
    with run_app(app, tls) as running:
        verify = ssl.create_default_context(cafile=str(tls.ca_pem))
        with httpx.Client(base_url=running.base, verify=verify, timeout=60) as client:
            yield client


@contextlib.contextmanager
def key_server(tls: TLS | None, body: bytes, hits: list[str]):
    async def key(request: Request) -> Response:
        hits.append(request.url.path)
        return Response(body)

    with run_app(Starlette(routes=[Route("/{path:path}", key)]), tls) as running:
        yield running.base


@pytest.fixture(scope="module")
def armored_key(other_key: SecretKey) -> bytes:
    return other_key.public_key.armored.encode()


@pytest.mark.parametrize(
    "body",
    [
        b"<!DOCTYPE html><html><body>Please log in to the proxy</body></html>",
        b"",
        b"-----BEGIN PGP SIGNATURE-----\n\nAAAA\n-----END PGP SIGNATURE-----\n",
    ],
    ids=["captive-portal-html", "empty", "not-a-key-block"],
)
def test_what_is_not_a_certificate_is_neither_served_nor_stored(
    tmp_path: Path, tls: TLS, body: bytes
) -> None:
    hits: list[str] = []
    with (
        key_server(tls, body, hits) as base,
        fleet(tmp_path, tls, upstream_url=base + "/key", upstream_ca=tls.ca_pem) as client,
    ):
        response = client.get(PATH)
    assert hits == ["/key"]
    assert response.status_code == 500
    assert response.json()["error"] == "BadRequest"
    assert "not one OpenPGP certificate" in response.json()["message"]
    assert not (tmp_path / "keys" / "default.pgp").exists()


def test_two_certificates_from_upstream_are_refused(
    tmp_path: Path, tls: TLS, other_key: SecretKey, signing_key: SecretKey
) -> None:
    """The agent accepts a signature by ANY key of the file: an upstream that adds a second
    certificate would add a signer."""
    two = one_block(other_key, signing_key)
    with (
        key_server(tls, two, []) as base,
        fleet(tmp_path, tls, upstream_url=base + "/key", upstream_ca=tls.ca_pem) as client,
    ):
        response = client.get(PATH)
    assert response.status_code == 500
    assert "2 certificates" in response.json()["message"]
    assert not (tmp_path / "keys" / "default.pgp").exists()


def one_block(*keys: SecretKey) -> bytes:
    """One armored block holding several certificates (as `gpg --export A B` writes it)."""
    binary = b"".join(dearmor(first_armored_block(k.public_key.armored)) for k in keys)
    text = base64.b64encode(binary).decode()
    lines = "\n".join(text[i : i + 64] for i in range(0, len(text), 64))
    armor = f"-----BEGIN {PUBLIC_KEY_BLOCK}-----\n\n{lines}\n-----END {PUBLIC_KEY_BLOCK}-----\n"
    return armor.encode()


def test_one_certificate_is_served_and_stored(tmp_path: Path, tls: TLS, armored_key: bytes):
    hits: list[str] = []
    page = b"<html>\n" + armored_key + b"\n</html>\n"  # the agent reads the first block only
    with (
        key_server(tls, page, hits) as base,
        fleet(tmp_path, tls, upstream_url=base + "/key", upstream_ca=tls.ca_pem) as client,
    ):
        first = client.get(PATH)
        second = client.get(PATH)
    assert first.status_code == second.status_code == 200
    assert first.content.startswith(b"-----BEGIN PGP PUBLIC KEY BLOCK-----")
    assert b"html" not in first.content
    assert (tmp_path / "keys" / "default.pgp").read_bytes() == first.content
    assert hits == ["/key"]


@pytest.mark.parametrize("target", ["other-origin", "https-to-http"])
def test_no_redirect_leaves_the_upstream_origin(
    tmp_path: Path, tls: TLS, armored_key: bytes, target: str
) -> None:
    elsewhere: list[str] = []
    with key_server(None, armored_key, elsewhere) as other:
        location: list[str] = []

        async def moved(request: Request) -> Response:
            return RedirectResponse(location[0], 302)

        with run_app(Starlette(routes=[Route("/key", moved)]), tls) as running:
            same_port_http = running.base.replace("https://", "http://")
            location.append((other if target == "other-origin" else same_port_http) + "/k")
            url = running.base + "/key"
            with fleet(tmp_path, tls, upstream_url=url, upstream_ca=tls.ca_pem) as client:
                response = client.get(PATH)
    assert response.status_code == 500
    assert "redirect" in response.json()["message"]
    assert elsewhere == []
    assert not (tmp_path / "keys" / "default.pgp").exists()


def test_a_redirect_inside_the_origin_is_followed(tmp_path: Path, tls: TLS, armored_key: bytes):
    async def moved(request: Request) -> Response:
        return RedirectResponse("/real/GPG-KEY-elastic-agent", 301)

    async def key(request: Request) -> Response:
        return Response(armored_key)

    routes = [Route("/key", moved), Route("/real/GPG-KEY-elastic-agent", key)]
    with (
        run_app(Starlette(routes=routes), tls) as running,
        fleet(tmp_path, tls, upstream_url=running.base + "/key", upstream_ca=tls.ca_pem) as c,
    ):
        response = c.get(PATH)
    assert response.status_code == 200
    assert (tmp_path / "keys" / "default.pgp").exists()


def test_a_silent_upstream_is_asked_once_and_failure_is_remembered(tmp_path: Path, tls: TLS):
    with (
        silent_upstream() as upstream,
        fleet(
            tmp_path, tls, upstream_url=upstream.url, upstream_deadline=2.0, failure_ttl=60.0
        ) as client,
        ThreadPoolExecutor(12) as pool,
    ):
        answers = list(pool.map(lambda _: client.get(PATH), range(12)))
        again = client.get(PATH)  # within failure_ttl: answered from memory
        assert len(upstream.accepted) == 1
    assert {a.status_code for a in answers} == {408}
    assert again.status_code == 408


# --- a real `fleetgap serve` --------------------------------------------------------------


def test_a_silent_upstream_starves_no_route_and_sigterm_still_stops_the_server(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    packages = tmp_path / "packages"
    shutil.copytree(sample_packages_path() / "fleetgap_hello", packages / "fleetgap_hello")
    data.mkdir()
    (data / "config.yml").write_text(f"package_paths: [{packages}]\n")
    certs = create_certificates(["127.0.0.1"], tmp_path / "tls")
    args = ("--data", str(data), "-tls-cert", str(certs.cert), "-tls-key", str(certs.key))
    verify = ssl.create_default_context(cafile=str(certs.ca_cert))
    with silent_upstream() as upstream:
        args += ("--pgp-upstream-url", upstream.url, "-require-package-signatures=false")
        with (
            fleetgap_serve(*args, cwd=data, log_dir=tmp_path, scheme="https") as server,
            httpx.Client(base_url=server.url, verify=verify, timeout=120) as client,
            ThreadPoolExecutor(45) as pool,
        ):
            waiting = []
            for _ in range(45):  # spaced as the rate limiter allows (one per 5 ms)
                waiting.append(pool.submit(client.get, PATH))
                threading.Event().wait(0.01)
            while not upstream.accepted:
                threading.Event().wait(0.05)
            icon = client.get("/package/fleetgap_hello/1.0.0/img/icon.svg", timeout=20)
            # answered while all 45 still wait (their deadline is 10 s)
            assert sum(not w.done() for w in waiting) == 45
            page = client.get("/ui/", timeout=20)
            published = client.get("/GPG-KEY-elastic-agent", timeout=20)
            server.process.send_signal(signal.SIGTERM)
            assert server.process.wait(timeout=60) == 0
            for answer in waiting:  # answered (408) or cut off by the stop, never hung
                with contextlib.suppress(httpx.HTTPError):
                    assert answer.result(timeout=60).status_code == 408
            assert len(upstream.accepted) == 1
    assert icon.status_code == 200 and icon.content.startswith(b"<svg")
    assert page.status_code == 200
    assert published.status_code == 404


def test_a_private_key_block_from_upstream_is_refused(tmp_path: Path, tls: TLS, other_key):
    """The agent would read a private key block as a key; fleetgap must not publish one."""
    with (
        key_server(tls, other_key.armored.encode(), []) as base,
        fleet(tmp_path, tls, upstream_url=base + "/key", upstream_ca=tls.ca_pem) as client,
    ):
        response = client.get(PATH)
    assert response.status_code == 500
    assert "expected a public key block" in response.json()["message"]
    assert b"BEGIN PGP PRIVATE" not in response.content
    assert not (tmp_path / "keys" / "default.pgp").exists()
