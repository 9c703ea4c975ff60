"""Fixtures for the trust tests: compat files, real keys, real HTTPS servers on 127.0.0.1."""

from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pysequoia
import pytest
import trustme
from click.testing import CliRunner
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from fleetgap.cli import main
from fleetgap.pgp.keys import SecretKey

from corpus import compat_root
from pgp_servers import TLS, run_app

DROP = "elastic-agent/internal/pkg/agent/application/upgrade/artifact/download/fs/testdata/drop"
DROP_FILE = "elastic-agent-8.0.0-darwin-x86_64.tar.gz"
CASE_FILES = {
    "sha512_case": ("elastic-agent/derived/sha512_parsing_cases.json", "cases"),
    "pgp_case": ("elastic-agent/derived/pgp_verification_cases.json", "cases"),
    "endpoint_case": ("fleet-server/derived/pgp_endpoint_cases.json", "cases"),
}


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Parametrize `sha512_case`, `pgp_case`, `endpoint_case` with every case of the file.

    Without the corpus there is one placeholder case; the `compat` fixture those tests use
    then skips, or fails under FLEETGAP_REQUIRE_COMPAT.
    """
    for name, (relpath, key) in CASE_FILES.items():
        if name in metafunc.fixturenames:
            root = compat_root()
            cases = json.loads((root / relpath).read_text())[key] if root else [None]
            metafunc.parametrize(name, cases, ids=[c["name"] if c else "no-compat" for c in cases])


@pytest.fixture(scope="session")
def drop(compat: Path) -> Path:
    """The agent's signed test vector directory."""
    return compat / DROP


@pytest.fixture(scope="session")
def elastic_key_file(compat: Path) -> Path:
    return compat / "elastic-agent" / "GPG-KEY-elasticsearch"


@pytest.fixture(scope="session")
def generated_key_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, str]:
    """One RSA-4096 key for the session, made by `fleetgap keys generate` (takes seconds)."""
    folder = tmp_path_factory.mktemp("signer")
    secret = folder / "signer.asc"
    result = CliRunner().invoke(
        main,
        ["keys", "generate", "--uid", "fleetgap test signer <test@example.org>"]
        + ["--secret", str(secret)],
    )
    assert result.exit_code == 0, result.output
    return secret, folder / "signer.asc.pub", result.output


@pytest.fixture(scope="session")
def signing_key(generated_key_files: tuple[Path, Path, str]) -> SecretKey:
    return SecretKey.read(generated_key_files[0])


@pytest.fixture(scope="session")
def other_key() -> SecretKey:
    """A second signer; RSA-2048 because generating it is much faster."""
    tsk = pysequoia.Tsk.generate(
        "fleetgap other signer <other@example.org>", cipher_suite=pysequoia.CipherSuite.RSA2k
    )
    return SecretKey(tsk)


@pytest.fixture(scope="session")
def tls(tmp_path_factory: pytest.TempPathFactory) -> TLS:
    """A test CA and a server certificate for 127.0.0.1 / localhost."""
    folder = tmp_path_factory.mktemp("tls")
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    ca_pem = folder / "ca.pem"
    server_pem = folder / "server.pem"
    ca.cert_pem.write_to_path(str(ca_pem))
    cert.private_key_and_cert_chain_pem.write_to_path(str(server_pem))
    return TLS(ca_pem, server_pem)


@pytest.fixture
def https_files(tls: TLS) -> Callable[[dict[str, bytes | int]], contextlib.AbstractContextManager]:
    """Serve fixed paths over HTTPS: path -> body bytes, or an int status code."""

    def serve(files: dict[str, bytes | int], extra: list[BaseRoute] | None = None):
        async def endpoint(request: Request) -> Response:
            found = files.get(request.url.path)
            if found is None:
                return Response(b"not found", 404)
            if isinstance(found, int):
                return Response(b"error", found)
            return Response(found, 200, media_type="application/octet-stream")

        routes = [*(extra or []), Route("/{path:path}", endpoint)]
        return run_app(Starlette(routes=routes), tls)

    return serve


@pytest.fixture(scope="session")
def gpg_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A throw-away GnuPG home (the test oracle); its agent is stopped at the end."""
    home = tmp_path_factory.mktemp("gnupg")
    home.chmod(0o700)
    yield home
    if shutil.which("gpgconf"):
        subprocess.run(
            ["gpgconf", "--homedir", str(home), "--kill", "all"], check=False, capture_output=True
        )
