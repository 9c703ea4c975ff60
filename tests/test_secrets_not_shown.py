"""No secret in a log or on a terminal: the user-info of a URL (`-proxy-to`,
`--pgp-upstream-url`, a download source, `--proxy`) is left out of what fleetgap logs and
prints, and httpx's and httpcore's own request lines do not reach the log. Real servers on
127.0.0.1: fleetgap serve as a subprocess, the upstreams as small ASGI apps."""

from __future__ import annotations

import base64
import ssl
import time
from pathlib import Path

import httpx
import pysequoia
import pytest
import trustme
from click.testing import CliRunner
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from fleetgap.cli import main
from fleetgap.pgp.keys import SecretKey

from serving import fleetgap_serve, free_port, serve_asgi

SECRET = "s3cret-Pa55"
AUTH = f"upstream-user:{SECRET}"


def upstream_app(seen: list[str]) -> Starlette:
    """A key URL, a registry's /search (answers) and /categories (fails), recording the
    credentials each request brought."""
    key = SecretKey(
        pysequoia.Tsk.generate("up <up@example.org>", cipher_suite=pysequoia.CipherSuite.RSA2k)
    ).public_key.armored

    def credentials(request: Request) -> None:
        header = request.headers.get("authorization", "")
        seen.append(base64.b64decode(header.removeprefix("Basic ")).decode() if header else "")

    async def key_file(request: Request) -> Response:
        credentials(request)
        return Response(key, media_type="application/pgp-keys")

    async def search(request: Request) -> Response:
        credentials(request)
        return JSONResponse([])

    async def categories(request: Request) -> Response:
        credentials(request)
        return Response("down", 503)

    return Starlette(
        routes=[
            Route("/GPG-KEY-elastic-agent", key_file),
            Route("/search", search),
            Route("/categories", categories),
        ]
    )


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> tuple[trustme.CA, Path, Path]:
    directory = tmp_path_factory.mktemp("tls")
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert.cert_chain_pems[0].write_to_path(str(cert_path))
    cert.private_key_pem.write_to_path(str(key_path))
    return ca, cert_path, key_path


def test_pgp_upstream_url_credentials_are_used_but_never_logged(tls, tmp_path: Path) -> None:
    ca, cert, key = tls
    seen: list[str] = []
    data = tmp_path / "data"
    (data / "keys").mkdir(parents=True)
    with serve_asgi(upstream_app(seen)) as base:
        upstream = base.replace("://", f"://{AUTH}@") + "/GPG-KEY-elastic-agent"
        args = ["--data", str(data), "--tls-cert", str(cert), "--tls-key", str(key)]
        args += ["--pgp-upstream-url", upstream]
        with fleetgap_serve(*args, log_dir=tmp_path, scheme="https") as server:
            context = ssl.create_default_context()
            ca.configure_trust(context)
            answer = httpx.get(server.url + "/api/agents/upgrades/9.1.0/pgp-public-key",
                               verify=context, timeout=30)  # fmt: skip
            time.sleep(0.5)
            log = server.log_text()
    assert answer.status_code == 200 and seen == [AUTH]
    assert "Key written to storage" in log  # the fetch happened and was logged
    assert SECRET not in log and "upstream-user" not in log
    assert "HTTP Request:" not in log  # httpx's own line


def test_proxy_to_credentials_are_used_but_never_logged(tmp_path: Path) -> None:
    seen: list[str] = []
    with serve_asgi(upstream_app(seen)) as base:
        proxy_to = base.replace("://", f"://{AUTH}@") + "/"
        args = ["--feature-proxy-mode", "--proxy-to", proxy_to, "--proxy-allow-insecure"]
        with fleetgap_serve(*args, log_dir=tmp_path) as server:
            found = httpx.get(server.url + "/search", timeout=60)
            failed = httpx.get(server.url + "/categories", timeout=60)
            time.sleep(0.5)
            log = server.log_text()
    assert found.status_code == 200 and failed.status_code == 500
    assert set(seen) == {AUTH}
    assert f"can't proxy request to {base}/categories" in log
    assert SECRET not in log and "upstream-user" not in log
    assert "HTTP Request:" not in log


def test_a_refused_proxy_to_is_shown_without_its_password(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        main,
        ["serve", "--feature-proxy-mode", "--proxy-to", f"http://{AUTH}@registry.test/"],
    )
    assert result.exit_code == 1
    assert result.output.startswith('error: -proxy-to must use HTTPS (got "http://registry.test/")')
    assert SECRET not in result.output


def test_download_source_and_proxy_credentials_are_not_printed() -> None:
    seen: list[str] = []
    with serve_asgi(upstream_app(seen)) as base:
        source = base.replace("://", f"://{AUTH}@") + "/downloads/"
        selection = ["--version", "9.1.0", "--product", "elastic-agent"]
        selection += ["--platform", "linux-x86_64", "--package-type", "tar.gz"]
        listed = CliRunner().invoke(
            main, ["artifacts", "list", *selection, "--source", source, "--sizes"]
        )
        as_json = CliRunner().invoke(
            main, ["artifacts", "list", *selection, "--source", source, "--json"]
        )
    assert listed.exit_code == 0, listed.output
    assert f"{base}/downloads/beats/elastic-agent/elastic-agent-9.1.0-linux-x86_64" in listed.output
    assert "\terror: HTTP 404 Not Found" in listed.output
    assert as_json.exit_code == 0 and f'"url": "{base}/downloads/' in as_json.output
    bad_proxy = CliRunner().invoke(
        main,
        ["artifacts", "list", *selection, "--sizes", "--proxy", f"ftp://{AUTH}@127.0.0.1:1"],
    )
    assert bad_proxy.exit_code == 1
    assert bad_proxy.output.startswith("error: bad proxy URL 'ftp://127.0.0.1:1'")
    for output in (listed.output, as_json.output, bad_proxy.output):
        assert SECRET not in output and "upstream-user" not in output


def test_doctor_does_not_print_the_password_of_a_url(tmp_path: Path) -> None:
    registry = f"http://{AUTH}@127.0.0.1:{free_port()}"
    result = CliRunner().invoke(
        main, ["doctor", "--stack-version", "9.1.0", "--registry", registry, "--timeout", "2"]
    )
    assert result.exit_code == 1
    assert "127.0.0.1" in result.output
    assert SECRET not in result.output and "upstream-user" not in result.output
