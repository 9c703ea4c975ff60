"""A symlink in DATA that leads out of it is never followed: not served by /epr/ or the
key URLs, not listed or served by /downloads/ (issue 17, item 7)."""

from __future__ import annotations

import os
import ssl
from pathlib import Path

import httpx
import pytest
import trustme

from builders import write_dir_package, write_zip_package
from serving import fleetgap_serve

SECRET = "root:x:0:0:secret outside DATA\n"


@pytest.fixture(scope="module")
def data_and_server(tmp_path_factory: pytest.TempPathFactory):
    base = tmp_path_factory.mktemp("symlinks")
    outside = base / "outside"
    outside.mkdir()
    secret = outside / "passwd"
    secret.write_text(SECRET)
    os.chmod(secret, 0o600)
    write_zip_package(outside, "stray", "1.0.0")

    data = base / "data"
    packages = data / "packages"
    write_zip_package(packages, "alpha", "1.0.0")
    write_zip_package(packages, "beta", "1.0.0")
    (packages / "beta-1.0.0.zip.sig").symlink_to(secret)  # a signature that is not one
    (packages / "stray-1.0.0.zip").symlink_to(outside / "stray-1.0.0.zip")
    downloads = data / "downloads" / "beats" / "elastic-agent"
    downloads.mkdir(parents=True)
    (downloads / "elastic-agent-9.1.0-linux-x86_64.tar.gz").write_bytes(b"agent")
    (downloads / "elastic-agent-9.1.0-linux-x86_64.tar.gz.sha512").symlink_to(secret)
    keys = data / "keys"
    keys.mkdir()
    (keys / "GPG-KEY-elastic-agent").symlink_to(secret)
    (keys / "default.pgp").symlink_to(secret)
    flags = ["--data", str(data), "-require-package-signatures=false"]
    with fleetgap_serve(*flags, cwd=data, log_dir=base) as running:
        yield data, running


def test_signature_symlink_out_of_data_is_not_served(data_and_server) -> None:
    _, server = data_and_server
    response = httpx.get(server.url + "/epr/beta/beta-1.0.0.zip.sig")
    assert SECRET not in response.text
    assert response.status_code == 404


def test_package_with_such_a_signature_is_refused_at_load(data_and_server) -> None:
    _, server = data_and_server
    names = [p["name"] for p in httpx.get(server.url + "/search").json()]
    assert names == ["alpha"]
    assert "leads outside" in server.log_text()


def test_zip_symlink_out_of_data_is_not_indexed(data_and_server) -> None:
    _, server = data_and_server
    assert httpx.get(server.url + "/package/stray/1.0.0/").status_code == 404
    assert httpx.get(server.url + "/epr/stray/stray-1.0.0.zip").status_code == 404


def test_signature_symlinked_out_after_load_is_not_served(data_and_server) -> None:
    data, server = data_and_server
    sig = data / "packages" / "alpha-1.0.0.zip.sig"
    # alpha was indexed unsigned; the route still serves a .sig put beside it later
    sig.symlink_to(data.parent / "outside" / "passwd")
    response = httpx.get(server.url + "/epr/alpha/alpha-1.0.0.zip.sig")
    assert SECRET not in response.text
    sig.unlink()


def test_key_symlinks_out_of_data_are_not_served(data_and_server) -> None:
    _, server = data_and_server
    published = httpx.get(server.url + "/GPG-KEY-elastic-agent")
    assert (published.status_code, SECRET in published.text) == (404, False)


def test_downloads_neither_list_nor_serve_a_symlink_out_of_data(data_and_server) -> None:
    _, server = data_and_server
    folder = server.url + "/downloads/beats/elastic-agent/"
    listing = httpx.get(folder).text
    assert "elastic-agent-9.1.0-linux-x86_64.tar.gz<" in listing
    assert ".sha512" not in listing
    sidecar = httpx.get(folder + "elastic-agent-9.1.0-linux-x86_64.tar.gz.sha512")
    assert (sidecar.status_code, SECRET in sidecar.text) == (404, False)


def test_symlinks_inside_the_package_path_still_work(tmp_path: Path) -> None:
    packages = tmp_path / "data" / "packages"
    write_zip_package(packages, "gamma", "1.0.0")
    (packages / "signatures").mkdir()
    (packages / "signatures" / "gamma.sig").write_text("kept inside\n")
    (packages / "gamma-1.0.0.zip.sig").symlink_to(packages / "signatures" / "gamma.sig")
    flags = ["--data", str(tmp_path / "data"), "-require-package-signatures=false"]
    with fleetgap_serve(*flags, cwd=tmp_path, log_dir=tmp_path) as server:
        names = [p["name"] for p in httpx.get(server.url + "/search").json()]
        sig = httpx.get(server.url + "/epr/gamma/gamma-1.0.0.zip.sig")
    assert names == ["gamma"]
    assert (sig.status_code, sig.text) == (200, "kept inside\n")


def test_fleet_server_key_symlinked_out_of_data_is_not_served(tmp_path: Path) -> None:
    secret = tmp_path / "passwd"
    secret.write_text(SECRET)
    os.chmod(secret, 0o600)  # passes the 0600 check the endpoint makes
    data = tmp_path / "data"
    (data / "keys").mkdir(parents=True)
    (data / "keys" / "default.pgp").symlink_to(secret)
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(b"".join(blob.bytes() for blob in cert.cert_chain_pems))
    cert.private_key_pem.write_to_path(str(key_path))
    flags = ["--data", str(data), "-tls-cert", str(cert_path), "-tls-key", str(key_path)]
    context = ssl.create_default_context()
    ca.configure_trust(context)
    url = "/api/agents/upgrades/9.1.0/pgp-public-key"
    with fleetgap_serve(*flags, cwd=tmp_path, log_dir=tmp_path, scheme="https") as running:
        response = httpx.get(running.url + url, verify=context)
        assert SECRET not in response.text
        assert response.status_code == 500
        # without default.pgp the published key plays the upstream: the same rule holds
        (data / "keys" / "default.pgp").unlink()
        (data / "keys" / "GPG-KEY-elastic-agent").symlink_to(secret)
        fallback = httpx.get(running.url + url, verify=context)
    assert SECRET not in fallback.text
    assert fallback.status_code == 500


def test_a_link_changed_after_a_file_was_sent_is_not_followed_out(tmp_path: Path) -> None:
    packages = tmp_path / "data" / "packages"
    root = write_dir_package(packages, "delta", "1.0.0")
    inside_file = root / "docs" / "inside.md"
    inside_file.write_text("x" * len(SECRET))
    (root / "docs" / "linked.md").symlink_to(inside_file)
    secret = tmp_path / "secret"
    secret.write_text(SECRET)  # the same size and time as the file first sent
    stamp = inside_file.stat().st_mtime_ns
    os.utime(secret, ns=(stamp, stamp))
    flags = ["--data", str(tmp_path / "data"), "-require-package-signatures=false"]
    url = "/package/delta/1.0.0/docs/linked.md"
    with fleetgap_serve(*flags, cwd=tmp_path, log_dir=tmp_path) as server:
        assert httpx.get(server.url + url).text == "x" * len(SECRET)
        (root / "docs" / "linked.md").unlink()
        (root / "docs" / "linked.md").symlink_to(secret)
        again = httpx.get(server.url + url)
    assert SECRET not in again.text
