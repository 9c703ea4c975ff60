"""`fleetgap serve --data DIR`: downloads and key URLs beside the registry, one server."""

from __future__ import annotations

import os
import ssl

import httpx
import pytest
import trustme

from builders import write_zip_package
from serving import fleetgap_serve

KEY = (
    "-----BEGIN PGP PUBLIC KEY BLOCK-----\n\nnot a real key, served as stored\n"
    "-----END PGP PUBLIC KEY BLOCK-----\n"
)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):
    data = tmp_path_factory.mktemp("data")
    write_zip_package(data / "packages", "alpha", "1.0.0")
    agent_dir = data / "downloads" / "beats" / "elastic-agent"
    agent_dir.mkdir(parents=True)
    (agent_dir / "elastic-agent-9.1.0-linux-x86_64.tar.gz").write_bytes(bytes(range(256)) * 400)
    (data / "keys").mkdir()
    (data / "keys" / "GPG-KEY-elastic-agent").write_text(KEY)
    default = data / "keys" / "default.pgp"
    default.write_text(KEY)
    os.chmod(default, 0o600)
    flags = ["--data", str(data), "-require-package-signatures=false"]
    with fleetgap_serve(*flags, cwd=data, log_dir=data) as running:
        yield running.url


def test_registry_still_answers(server: str) -> None:
    assert [p["name"] for p in httpx.get(server + "/search").json()] == ["alpha"]


def test_downloads_are_served_with_ranges(server: str) -> None:
    url = server + "/downloads/beats/elastic-agent/elastic-agent-9.1.0-linux-x86_64.tar.gz"
    full = httpx.get(url)
    assert full.status_code == 200
    assert full.headers["content-length"] == str(256 * 400)
    part = httpx.get(url, headers={"Range": "bytes=10-19"})
    assert (part.status_code, part.content) == (206, bytes(range(10, 20)))


def test_downloads_listing_and_redirect(server: str) -> None:
    listing = httpx.get(server + "/downloads/beats/elastic-agent/")
    assert listing.status_code == 200
    assert "elastic-agent-9.1.0-linux-x86_64.tar.gz" in listing.text
    assert httpx.get(server + "/downloads").status_code in (301, 307, 308)


def test_published_key_for_fleet_server(server: str) -> None:
    response = httpx.get(server + "/GPG-KEY-elastic-agent")
    assert (response.status_code, response.text) == (200, KEY)


def test_fleet_server_key_endpoint_needs_tls_as_fleet_server_does(server: str) -> None:
    response = httpx.get(server + "/api/agents/upgrades/9.1.0/pgp-public-key")
    assert response.status_code == 501
    assert response.json() == {
        "statusCode": 501,
        "error": "ErrTLSRequired",
        "message": "server must run with tls to use this endpoint",
    }


def test_fleet_server_key_endpoint_over_https(tmp_path_factory: pytest.TempPathFactory) -> None:
    data = tmp_path_factory.mktemp("tls-data")
    (data / "keys").mkdir()
    default = data / "keys" / "default.pgp"
    default.write_text(KEY)
    os.chmod(default, 0o600)
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    cert_path, key_path = data / "cert.pem", data / "key.pem"
    cert_path.write_bytes(b"".join(blob.bytes() for blob in cert.cert_chain_pems))
    cert.private_key_pem.write_to_path(str(key_path))
    flags = ["--data", str(data), "-tls-cert", str(cert_path), "-tls-key", str(key_path)]
    with fleetgap_serve(*flags, cwd=data, log_dir=data, scheme="https") as running:
        context = ssl.create_default_context()
        ca.configure_trust(context)
        response = httpx.get(
            running.url + "/api/agents/upgrades/9.1.0/pgp-public-key", verify=context
        )
    assert (response.status_code, response.text) == (200, KEY)


def test_unknown_key_path_is_the_registry_not_found(server: str) -> None:
    response = httpx.get(server + "/GPG-KEY-nothing")
    assert (response.status_code, response.text) == (404, "404 page not found\n")
