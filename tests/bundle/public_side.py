"""One loopback "public side" for the bundle tests: `fleetgap serve --data` playing Elastic's
registry (signed package zips) and artifacts.elastic.co (/downloads/ with .sha512 and .asc),
everything signed with a key generated here.

The registry's content is chosen so that each Go distribution rule matters (spec: epr-api
§12): several versions per package, a prerelease, Kibana conditions, spec (format_version)
ranges; tests/bundle/test_resolve.py derives its expectations from this table by hand.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import pytest

from fleetgap.pgp.keys import SecretKey
from fleetgap.pgp.package_signatures import sign_package
from fleetgap.pgp.signatures import sign_bytes

from builders import package_files, write_zip_package
from serving import fleetgap_serve

# name, version, format_version, conditions.kibana.version
PACKAGES = (
    ("apache", "1.0.0", "2.0.0", "^7.17.0 || ^8.13.0"),
    ("apache", "2.1.0", "2.0.0", "^8.15.0 || ^9.0.0"),
    ("apache", "2.2.0", "3.0.0", "^9.1.0"),
    ("apache", "3.0.0-beta1", "3.3.0", "^9.1.0"),
    ("nginx", "1.0.0", "2.0.0", "^7.17.0"),
    ("nginx", "2.0.0", "3.0.0", "^8.16.0 || ^9.0.0"),
    ("system", "1.4.0", "3.0.0", "^8.15.0 || ^9.0.0"),
    ("system", "1.5.0", "3.4.0", "^8.19.0 || ^9.1.0"),
    ("zeta", "1.0.0", "3.0.0", "^8.13.0 || ^9.0.0"),
)
AGENT = "beats/elastic-agent/elastic-agent-9.1.0-linux-x86_64.tar.gz"
AGENT_BYTES = bytes(range(256)) * 10_000  # 2.5 MB: enough for --split 1MiB to make parts


@dataclass(frozen=True)
class Public:
    url: str  # registry address; artifacts under <url>/downloads/
    data: Path  # what the server serves
    key: SecretKey
    key_file: Path  # the signing key's public half, armored
    workdir: Path

    @property
    def downloads(self) -> str:
        return f"{self.url}/downloads/"

    def sha256(self, relative: str) -> str:
        return hashlib.sha256((self.data / relative).read_bytes()).hexdigest()


def write_public_data(data: Path, key: SecretKey) -> None:
    for name, version, spec, kibana in PACKAGES:
        fields = {"format_version": spec, "conditions.kibana.version": f'"{kibana}"'}
        files = package_files(name, version, fields)
        sign_package(write_zip_package(data / "packages", name, version, files), key)
    agent = data / "downloads" / AGENT
    agent.parent.mkdir(parents=True)
    agent.write_bytes(AGENT_BYTES)
    digest = hashlib.sha512(AGENT_BYTES).hexdigest()
    Path(f"{agent}.sha512").write_text(f"{digest}  {agent.name}\n")
    Path(f"{agent}.asc").write_bytes(sign_bytes(AGENT_BYTES, key))
    (data / "keys").mkdir()
    (data / "keys" / "GPG-KEY-elastic-agent").write_text(key.public_key.armored)


@pytest.fixture(scope="session")
def public(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("public")
    key = SecretKey.generate("Elastic (test) <test@example.invalid>")
    key_file = root / "elastic-test.asc"
    key_file.write_text(key.public_key.armored)
    data = root / "data"
    write_public_data(data, key)
    env = {"PYTHONPATH": str(Path(__file__).resolve().parents[2] / "src")}
    with fleetgap_serve("--data", str(data), env=env, cwd=root, log_dir=root) as server:
        yield Public(server.url, data, key, key_file, root)
