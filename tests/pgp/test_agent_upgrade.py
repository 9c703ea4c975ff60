"""The agent's upgrade verification chain against real HTTPS servers on 127.0.0.1
(spec: agent-artifacts §6.2–§6.7)."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from dataclasses import replace
from pathlib import Path

import pytest
from click.testing import CliRunner

from fleetgap.artifacts.agent_upgrade import UpgradeCheck, fleet_key_url, verify_upgrade
from fleetgap.cli import main
from fleetgap.errors import FleetgapError
from fleetgap.net import NetOptions
from fleetgap.pgp.key_routes import key_routes

from pgp_servers import TLS
from serving import free_port

DROP_FILE = "elastic-agent-8.0.0-darwin-x86_64.tar.gz"
NAME = "elastic-agent-8.0.0-linux-x86_64.tar.gz"  # the agent's test vector, served for linux
DIR = "/downloads/beats/elastic-agent/"
TEST_KEY = "F356B8E790E87390D67B139C1787BA7B3E2BAB30"


@pytest.fixture
def site(https_files, drop: Path, tmp_path: Path):
    """An artifact mirror + key URLs + a Fleet Server key endpoint, all on one HTTPS server."""
    data = (drop / DROP_FILE).read_bytes()

    @contextlib.contextmanager
    def start(**overrides):
        files: dict[str, bytes | int] = {
            DIR + NAME: data,
            DIR + NAME + ".sha512": f"{hashlib.sha512(data).hexdigest()}  {NAME}\n".encode(),
            DIR + NAME + ".asc": (drop / f"{DROP_FILE}.asc").read_bytes(),
            "/keys/test": (drop / "public-key.pgp").read_bytes(),
            "/keys/garbage": b"<html>garbage</html>",
        }
        for path, body in overrides.items():
            files[path] = body
        fleet_data = tmp_path / "fleet"
        (fleet_data / "keys").mkdir(parents=True)
        default = fleet_data / "keys" / "default.pgp"
        default.write_bytes((drop / "public-key.pgp").read_bytes())
        os.chmod(default, 0o600)
        with https_files(files, key_routes(fleet_data)) as running:
            yield running.base

    return start


@pytest.fixture
def base_check(tls: TLS, elastic_key_file: Path) -> UpgradeCheck:
    return UpgradeCheck(
        version="8.0.0",
        embedded_key=elastic_key_file.read_bytes(),
        remote_key_url=f"https://127.0.0.1:{free_port()}/GPG-KEY-elastic-agent",  # unreachable
        net=NetOptions(ca_cert=tls.ca_pem, attempts=2, retry_for=2, wait_initial=0.05),
        key_timeout=1.0,
    )


def test_remote_default_key_url_verifies_after_the_embedded_key_fails(site, base_check) -> None:
    with site() as base:
        check = replace(
            base_check, source_uri=f"{base}/downloads/", remote_key_url=f"{base}/keys/test"
        )
        verdict = verify_upgrade(check)
    assert verdict.passed, verdict.error
    assert verdict.log == (
        "WARN Verification with PGP[0] failed: openpgp: signature made by unknown entity",
        "Verification with PGP[1] successful",
    )
    assert verdict.verified_by == f"PGP[1] default remote key: {TEST_KEY}"


def test_cli_key_comes_before_remote_keys_which_are_still_fetched(site, base_check, drop) -> None:
    with site() as base:
        check = replace(
            base_check, source_uri=f"{base}/downloads/", pgp_path=drop / "public-key.pgp"
        )
        verdict = verify_upgrade(check)
    assert verdict.passed
    assert verdict.log[0].startswith("WARN Skipped remote PGP located at")  # fetched eagerly
    assert verdict.verified_by.startswith("PGP[1] --pgp-path ")


def test_unreachable_and_garbage_key_urls_are_skipped_and_fleet_server_key_verifies(
    site, base_check
) -> None:
    with site() as base:
        check = replace(
            base_check,
            source_uri=f"{base}/downloads/",
            pgp_uri=f"{base}/keys/garbage",
            fleet_url=base,
        )
        verdict = verify_upgrade(check)
    assert verdict.passed, verdict.error
    unreachable = check.remote_key_url
    assert verdict.log[0].startswith(f'WARN Skipped remote PGP located at "{unreachable}"')
    assert verdict.log[1].startswith("NOTE 1 key URL(s) unusable: a real agent waits up to 60 s")
    assert verdict.log[2] == (
        "WARN Verification with PGP[0] failed: openpgp: signature made by unknown entity"
    )
    assert verdict.log[3].startswith("WARN Verification with PGP[1] failed: read armored key ring")
    assert verdict.log[4] == "Verification with PGP[2] successful"
    assert verdict.verified_by == f"PGP[2] Fleet Server: {TEST_KEY}"


def test_key_url_answering_404_is_only_a_warning(site, base_check, drop) -> None:
    with site() as base:
        check = replace(
            base_check,
            source_uri=f"{base}/downloads/",
            pgp_uri=f"{base}/keys/missing",
            pgp_path=drop / "public-key.pgp",
        )
        verdict = verify_upgrade(check)
    assert verdict.passed
    assert (
        f'WARN Failed to fetch remote PGP key from "{base}/keys/missing": call to '
        f"'{base}/keys/missing' returned unsuccessful status code: 404"
    ) in verdict.log


def test_no_key_that_verifies_blocks_the_upgrade(site, base_check) -> None:
    with site() as base:
        verdict = verify_upgrade(replace(base_check, source_uri=f"{base}/downloads/"))
    assert not verdict.passed
    assert verdict.state == "UPG_FAILED"
    assert verdict.failed_step == "signature"
    assert verdict.error.startswith(
        "failed verification of agent binary: could not verify PGP signature of"
    )
    assert verdict.error.endswith("openpgp: signature made by unknown entity")


def test_zero_usable_keys_fails_as_since_agent_8_12(site, base_check) -> None:
    with site() as base:
        check = replace(base_check, source_uri=f"{base}/downloads/", skip_default_pgp=True)
        verdict = verify_upgrade(check)
    assert not verdict.passed
    assert "WARN No PGP key available, skipping verification process" in verdict.log
    assert verdict.error.endswith(": %!w(<nil>)")


def test_plain_http_key_urls_are_skipped_and_refused_on_the_command_line(site, base_check) -> None:
    with site() as base:
        check = replace(
            base_check,
            source_uri=f"{base}/downloads/",
            remote_key_url="http://127.0.0.1:1/GPG-KEY-elastic-agent",
            fleet_url="127.0.0.1:8220",  # no scheme -> http -> skipped
        )
        verdict = verify_upgrade(check)
    assert not verdict.passed
    skipped = [line for line in verdict.log if "HTTPS is required" in line]
    assert len(skipped) == 2
    with pytest.raises(FleetgapError, match="HTTPS is required"):
        verify_upgrade(replace(check, pgp_uri="http://127.0.0.1/key"))


def test_checksum_mismatch_fails_verification(site, base_check) -> None:
    with site(**{DIR + NAME + ".sha512": f"{'0' * 128}  {NAME}\n".encode()}) as base:
        verdict = verify_upgrade(replace(base_check, source_uri=f"{base}/downloads/"))
    assert verdict.failed_step == "checksum"
    assert verdict.error.startswith("failed verification of agent binary: checksum mismatch for")


def test_sidecar_without_the_file_name_fails_verification(site, base_check) -> None:
    with site(**{DIR + NAME + ".sha512": b"0" * 128 + b"\n"}) as base:
        verdict = verify_upgrade(replace(base_check, source_uri=f"{base}/downloads/"))
    assert verdict.failed_step == "checksum"
    assert f'checksum for "{NAME}" was not found in' in verdict.error


def test_missing_package_fails_the_download(site, base_check) -> None:
    with site() as base:
        verdict = verify_upgrade(
            replace(base_check, version="9.9.9", source_uri=f"{base}/downloads/")
        )
    assert verdict.failed_step == "download"
    assert verdict.error.startswith("failed download of agent binary: call to '")
    assert verdict.error.endswith("returned unsuccessful status code: 404")


def test_missing_signature_fails_verification(site, base_check) -> None:
    with site(**{DIR + NAME + ".asc": 404}) as base:
        verdict = verify_upgrade(replace(base_check, source_uri=f"{base}/downloads/"))
    assert verdict.failed_step == "signature"
    assert verdict.error.endswith(".asc' returned unsuccessful status code: 404")


def test_garbage_signature_fails_with_every_key(site, base_check, drop) -> None:
    with site(**{DIR + NAME + ".asc": b"bad sig"}) as base:
        check = replace(
            base_check, source_uri=f"{base}/downloads/", pgp_path=drop / "public-key.pgp"
        )
        verdict = verify_upgrade(check)
    assert not verdict.passed
    assert verdict.error.endswith("invalid signature: no armored data found")


def test_file_source_is_a_flat_drop_directory(base_check, drop: Path) -> None:
    check = replace(
        base_check,
        source_uri=f"file://{drop}",
        os="darwin",
        pgp_path=drop / "public-key.pgp",
    )
    verdict = verify_upgrade(check)
    assert verdict.passed, verdict.error
    assert verdict.artifact == DROP_FILE


def test_missing_embedded_key_is_reported(base_check) -> None:
    with pytest.raises(FleetgapError, match="fleetgap keys fetch-elastic"):
        verify_upgrade(replace(base_check, embedded_key=None))


def test_fleet_key_urls_match_the_derived_cases(compat: Path) -> None:
    cases = json.loads((compat / "elastic-agent/derived/artifact_urls.json").read_text())
    for case in cases["fleet_pgp_url_cases"]:
        got = fleet_key_url(case["fleet_host"], case["target_version"], case["fleet_path"])
        assert got == case["pgp_url"], case


def test_cli_reports_pass_and_refusal(site, tls: TLS, elastic_key_file: Path) -> None:
    runner = CliRunner()
    with site() as base:
        common = [
            "agent", "verify-upgrade", "8.0.0",
            "--source-uri", f"{base}/downloads/",
            "--elastic-key", str(elastic_key_file),
            "--ca-cert", str(tls.ca_pem),
            "--key-timeout", "1",
        ]  # fmt: skip
        passed = runner.invoke(main, [*common, "--remote-key-url", f"{base}/keys/test"])
        refused = runner.invoke(main, [*common, "--remote-key-url", f"{base}/keys/garbage"])
        as_json = runner.invoke(main, [*common, "--remote-key-url", f"{base}/keys/test", "--json"])
    assert passed.exit_code == 0, passed.output
    assert "ok: elastic-agent-8.0.0-linux-x86_64.tar.gz passes" in passed.output
    assert refused.exit_code == 1
    assert "error: the agent would refuse this upgrade (UPG_FAILED)" in refused.output
    assert json.loads(as_json.output)["verified_by"].endswith(TEST_KEY)
