"""`fleetgap keys …`: generate, show, fetch Elastic's key (pinned), publish, install for
Fleet Server."""

from __future__ import annotations

import os
import ssl
from pathlib import Path

import httpx
from click.testing import CliRunner
from starlette.applications import Starlette

from fleetgap.cli import main
from fleetgap.pgp.elastic_key import load_elastic_key
from fleetgap.pgp.key_routes import key_routes
from fleetgap.pgp.keys import ELASTIC_FINGERPRINT, SecretKey, read_public_key

from pgp_servers import TLS, run_app


def _run(*args: str):
    return CliRunner().invoke(main, list(args))


def test_generate_writes_an_rsa_key_pair_with_a_private_secret(generated_key_files) -> None:
    secret, public, output = generated_key_files
    assert secret.stat().st_mode & 0o777 == 0o600
    key = SecretKey.read(secret)
    assert read_public_key(public).fingerprint == key.fingerprint
    assert key.fingerprint in output


def test_generate_never_overwrites_a_key(generated_key_files) -> None:
    secret, _, _ = generated_key_files
    before = secret.read_bytes()
    result = _run("keys", "generate", "--uid", "x", "--secret", str(secret))
    assert result.exit_code == 1
    assert "refusing to overwrite" in result.output
    assert secret.read_bytes() == before


def test_show_tells_whether_the_agent_can_use_a_key(elastic_key_file: Path) -> None:
    result = _run("keys", "show", str(elastic_key_file))
    assert result.exit_code == 0
    assert f"fingerprint: {ELASTIC_FINGERPRINT}" in result.output
    assert "agent (Go):  ok" in result.output


def test_fetch_elastic_checks_the_pinned_fingerprint_and_stores_the_key(
    https_files, tls: TLS, elastic_key_file: Path, tmp_path: Path
) -> None:
    body = elastic_key_file.read_bytes()
    with https_files({"/GPG-KEY-elasticsearch": body}) as running:
        result = _run(
            "keys", "fetch-elastic", "--data", str(tmp_path),
            "--url", f"{running.base}/GPG-KEY-elasticsearch", "--ca-cert", str(tls.ca_pem),
        )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert (tmp_path / "keys" / "GPG-KEY-elasticsearch").read_bytes() == body
    assert (tmp_path / "keys" / "GPG-KEY-elastic-agent").read_bytes() == body
    assert load_elastic_key(tmp_path) == body


def test_fetch_elastic_refuses_any_other_key_and_writes_nothing(
    https_files, tls: TLS, drop: Path, tmp_path: Path
) -> None:
    with https_files({"/GPG-KEY-elasticsearch": (drop / "public-key.pgp").read_bytes()}) as srv:
        result = _run(
            "keys", "fetch-elastic", "--data", str(tmp_path),
            "--url", f"{srv.base}/GPG-KEY-elasticsearch", "--ca-cert", str(tls.ca_pem),
        )  # fmt: skip
    assert result.exit_code == 1
    assert "is not Elastic's signing key: fingerprint F356B8E7" in result.output
    assert f"expected {ELASTIC_FINGERPRINT}" in result.output
    assert not (tmp_path / "keys").exists()


def test_fetch_elastic_keeps_an_operators_own_agent_key(
    https_files, tls: TLS, elastic_key_file: Path, tmp_path: Path
) -> None:
    (tmp_path / "keys").mkdir()
    own = tmp_path / "keys" / "GPG-KEY-elastic-agent"
    own.write_bytes(b"our own key")
    with https_files({"/k": elastic_key_file.read_bytes()}) as running:
        result = _run(
            "keys", "fetch-elastic", "--data", str(tmp_path),
            "--url", f"{running.base}/k", "--ca-cert", str(tls.ca_pem),
        )  # fmt: skip
    assert result.exit_code == 0
    assert own.read_bytes() == b"our own key"


def test_publish_serves_an_organisations_key_as_the_agent_key(
    generated_key_files, tmp_path: Path
) -> None:
    _, public, _ = generated_key_files
    result = _run("keys", "publish", str(public), "--data", str(tmp_path))
    assert result.exit_code == 0, result.output
    published = read_public_key(tmp_path / "keys" / "GPG-KEY-elastic-agent")
    assert published.fingerprint == read_public_key(public).fingerprint


def test_publish_refuses_something_that_is_not_a_key(tmp_path: Path) -> None:
    junk = tmp_path / "junk"
    junk.write_text("hello")
    result = _run("keys", "publish", str(junk), "--data", str(tmp_path))
    assert result.exit_code == 1
    assert "read armored key ring" in result.output


def test_install_fleet_server_writes_default_pgp_0600_which_fleet_serves(
    drop: Path, tmp_path: Path, tls: TLS
) -> None:
    fleet_dir = tmp_path / "fleet-server"
    fleet_dir.mkdir()
    key = drop / "public-key.pgp"
    result = _run("keys", "install-fleet-server", str(fleet_dir), "--key", str(key))
    assert result.exit_code == 0, result.output
    installed = fleet_dir / "elastic-agent-upgrade-keys" / "default.pgp"
    assert installed.read_bytes() == key.read_bytes()
    assert installed.stat().st_mode & 0o777 == 0o600
    assert installed.parent.stat().st_mode & 0o777 == 0o700
    # the same layout as DATA/keys/default.pgp: our endpoint accepts it as Fleet Server would
    data = tmp_path / "data"
    data.mkdir()
    os.symlink(installed.parent, data / "keys")
    verify = ssl.create_default_context(cafile=str(tls.ca_pem))
    with run_app(Starlette(routes=key_routes(data)), tls) as running:
        url = f"{running.base}/api/agents/upgrades/9.1.0/pgp-public-key"
        response = httpx.get(url, verify=verify)
    assert response.status_code == 200
    assert response.content == key.read_bytes()


def test_install_fleet_server_defaults_to_the_published_agent_key(
    drop: Path, tmp_path: Path
) -> None:
    (tmp_path / "keys").mkdir()
    (tmp_path / "keys" / "GPG-KEY-elastic-agent").write_bytes(
        (drop / "public-key.pgp").read_bytes()
    )
    fleet_dir = tmp_path / "fs"
    fleet_dir.mkdir()
    result = _run("keys", "install-fleet-server", str(fleet_dir), "--data", str(tmp_path))
    assert result.exit_code == 0, result.output
    assert (fleet_dir / "elastic-agent-upgrade-keys" / "default.pgp").is_file()


def test_install_fleet_server_refuses_a_non_key(tmp_path: Path) -> None:
    junk = tmp_path / "junk"
    junk.write_text("not a key")
    result = _run("keys", "install-fleet-server", str(tmp_path), "--key", str(junk))
    assert result.exit_code == 1
    assert not (tmp_path / "elastic-agent-upgrade-keys").exists()
