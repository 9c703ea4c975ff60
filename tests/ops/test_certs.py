"""`fleetgap certs create`: a private CA and a server certificate `fleetgap serve` uses, that
a client trusting only the CA accepts."""

from __future__ import annotations

import socket
import ssl
import stat
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner
from cryptography import x509
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from fleetgap.cli import main

from serving import fleetgap_serve, serve_asgi


def create(*args: str) -> str:
    result = CliRunner().invoke(main, ["certs", "create", *args])
    assert result.exit_code == 0, result.output
    return result.output


@pytest.fixture(scope="module")
def issued(tmp_path_factory):
    out = tmp_path_factory.mktemp("tls")
    output = create("--host", "localhost", "--host", "127.0.0.1", "--out", str(out))
    return out, output


def test_serve_with_the_certificate_is_trusted_with_the_ca_only(issued, tmp_path):
    out, output = issued
    assert f"EPR_TLS_CERT={out / 'server.crt'}" in output
    assert f"NODE_EXTRA_CA_CERTS={out / 'ca.crt'}" in output
    data = tmp_path / "data"
    data.mkdir()
    env = {"EPR_TLS_CERT": str(out / "server.crt"), "EPR_TLS_KEY": str(out / "server.key")}
    with fleetgap_serve("--data", str(data), env=env, log_dir=tmp_path, scheme="https") as server:
        context = ssl.create_default_context(cafile=str(out / "ca.crt"))
        for host in ("127.0.0.1", "localhost"):
            url = server.url.replace("127.0.0.1", host) + "/health"
            assert httpx.get(url, verify=context, timeout=10).status_code == 200
        with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
            httpx.get(server.url + "/health", verify=ssl.create_default_context(), timeout=10)


def test_keys_are_0600_and_names_are_in_the_certificate(issued):
    out, _ = issued
    for key in (out.with_name(out.name + "-ca") / "ca.key", out / "server.key"):
        assert stat.S_IMODE(key.stat().st_mode) == 0o600
    cert = x509.load_pem_x509_certificate((out / "server.crt").read_bytes())
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.DNSName) == ["localhost"]
    assert [str(ip) for ip in sans.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
    assert (out / "tls.env").read_text().splitlines()[1] == f"EPR_TLS_KEY={out / 'server.key'}"


def test_refuses_to_overwrite(issued):
    out, _ = issued
    before = (out / "server.key").read_bytes()
    result = CliRunner().invoke(main, ["certs", "create", "--host", "x.test", "--out", str(out)])
    assert result.exit_code == 1
    assert result.output.startswith("error: ") and "refusing to overwrite" in result.output
    assert (out / "server.key").read_bytes() == before


def test_issue_from_an_existing_ca(issued, tmp_path):
    first, _ = issued
    ca_dir = first.with_name(first.name + "-ca")
    out = tmp_path / "second"
    create("--host", "127.0.0.1", "--out", str(out), "--ca", str(ca_dir), "--days", "30")
    assert not (out / "ca.key").exists() and not (out / "ca.crt").exists()
    app = Starlette(routes=[Route("/", lambda request: PlainTextResponse("ok"))])
    tls = {"ssl_certfile": str(out / "server.crt"), "ssl_keyfile": str(out / "server.key")}
    with serve_asgi(app, **tls) as url:
        context = ssl.create_default_context(cafile=str(ca_dir / "ca.crt"))
        assert httpx.get(url + "/", verify=context).text == "ok"


def test_bad_host_is_one_error_line(tmp_path):
    result = CliRunner().invoke(
        main, ["certs", "create", "--host", "bad host", "--out", str(tmp_path / "x")]
    )
    assert result.exit_code == 1
    assert result.output == "error: --host 'bad host' is neither a DNS name nor an IP address\n"


# --- the CA's key apart, absolute paths in tls.env, international names ----------------------


def test_the_ca_key_is_written_apart_from_what_the_service_reads(issued):
    out, output = issued
    ca_dir = out.with_name(out.name + "-ca")
    assert sorted(p.name for p in out.iterdir()) == [
        "ca.crt",
        "server.crt",
        "server.key",
        "tls.env",
    ]
    assert sorted(p.name for p in ca_dir.iterdir()) == ["ca.crt", "ca.key"]
    assert stat.S_IMODE(ca_dir.stat().st_mode) == 0o700
    assert (ca_dir / "ca.crt").read_bytes() == (out / "ca.crt").read_bytes()
    assert f"its key {ca_dir / 'ca.key'} (mode 0600)" in output
    env = dict(line.split("=", 1) for line in (out / "tls.env").read_text().splitlines())
    assert all(not Path(path).is_relative_to(ca_dir) for path in env.values())


def test_ca_dir_is_chosen_and_never_inside_out(tmp_path):
    out, ca_dir = tmp_path / "tls", tmp_path / "private" / "fleetgap-ca"
    create("--host", "registry.test", "--out", str(out), "--ca-dir", str(ca_dir))
    assert (ca_dir / "ca.key").is_file() and not (out / "ca.key").exists()
    again = tmp_path / "again"
    for inside in (again, again / "ca"):
        result = CliRunner().invoke(
            main,
            ["certs", "create", "--host", "x.test", "--out", str(again), "--ca-dir", str(inside)],
        )
        assert result.exit_code == 1
        assert result.output.startswith("error: --ca-dir ") and "outside --out" in result.output
        assert len(result.output.splitlines()) == 1
    assert not (tmp_path / "again").exists()


def test_tls_env_holds_absolute_paths_for_a_relative_out(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    output = create("--host", "127.0.0.1", "--out", "tls")
    env = dict(line.split("=", 1) for line in (tmp_path / "tls" / "tls.env").read_text().split())
    assert env == {
        "EPR_TLS_CERT": str(tmp_path / "tls" / "server.crt"),
        "EPR_TLS_KEY": str(tmp_path / "tls" / "server.key"),
        "NODE_EXTRA_CA_CERTS": str(tmp_path / "tls" / "ca.crt"),
    }
    assert f"EPR_TLS_CERT={tmp_path / 'tls' / 'server.crt'}" in output


def test_an_international_host_name_is_an_a_label_clients_accept(tmp_path):
    out = tmp_path / "tls"
    create("--host", "Bücher.example", "--host", "127.0.0.1", "--out", str(out))
    cert = x509.load_pem_x509_certificate((out / "server.crt").read_bytes())
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.DNSName) == ["xn--bcher-kva.example"]
    app = Starlette(routes=[Route("/", lambda request: PlainTextResponse("ok"))])
    tls = {"ssl_certfile": str(out / "server.crt"), "ssl_keyfile": str(out / "server.key")}
    with serve_asgi(app, **tls) as url:
        context = ssl.create_default_context(cafile=str(out / "ca.crt"))
        port = int(url.rsplit(":", 1)[1])
        with (
            socket.create_connection(("127.0.0.1", port), timeout=10) as raw,
            context.wrap_socket(raw, server_hostname="bücher.example") as tls_socket,
        ):
            assert tls_socket.version()  # the handshake verified the name


def test_a_bad_international_host_name_is_one_error_line(tmp_path):
    result = CliRunner().invoke(
        main, ["certs", "create", "--host", "bücher-.example", "--out", str(tmp_path / "x")]
    )
    assert result.exit_code == 1
    assert result.output.startswith("error: --host 'bücher-.example' is not a valid international")
    assert len(result.output.splitlines()) == 1 and not (tmp_path / "x").exists()
