"""One closed side for the operator tests: `fleetgap serve --data DIR` over TLS from a
private CA (`fleetgap.ops.certs`), holding signed packages, artifacts and keys."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from artifacts.conftest import rsa_key
from fleetgap.ops.certs import create_certificates
from fleetgap.pgp.keys import SecretKey

from closed_side import build_data_dir
from serving import Server, fleetgap_serve


@dataclass(frozen=True)
class ClosedSide:
    server: Server
    data: Path
    ca_cert: Path
    tls_dir: Path
    key: SecretKey

    @property
    def url(self) -> str:
        return self.server.url


@pytest.fixture(scope="session")
def ops_key() -> SecretKey:
    return rsa_key("fleetgap ops test <ops@test.invalid>")


@pytest.fixture(scope="session")
def closed_side(tmp_path_factory, ops_key) -> ClosedSide:
    root = tmp_path_factory.mktemp("closed")
    tls = create_certificates(["127.0.0.1", "localhost"], root / "tls")
    data = build_data_dir(root / "data", ops_key)
    args = ("--data", str(data), "-tls-cert", str(tls.cert), "-tls-key", str(tls.key))
    with fleetgap_serve(*args, log_dir=root, scheme="https") as server:
        yield ClosedSide(server, data, tls.ca_cert, root / "tls", ops_key)
