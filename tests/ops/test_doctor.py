"""`fleetgap doctor` against a complete closed side (it passes), then against setups that
each lack one thing: each gives the right failure, its fix, and exit code 1."""

from __future__ import annotations

import json
import signal
import socket
import ssl
import time

import httpx
import pytest
from click.testing import CliRunner

from artifacts.conftest import rsa_key
from fleetgap.cli import main
from fleetgap.ops.certs import create_certificates

from closed_side import EXTRA_PACKAGE, PLATFORMS, STACK, agent_path, moved_away
from serving import fleetgap_serve, free_port


def base_args(side, **overrides: str) -> list[str]:
    urls = {
        "--registry": side.url,
        "--artifacts": side.url + "/downloads/",
        "--key-url": side.url + "/GPG-KEY-elastic-agent",
        "--fleet-server": side.url,
        "--ca-cert": str(side.ca_cert),
    }
    urls.update(overrides)
    args = ["doctor", "--stack-version", STACK, "--package", EXTRA_PACKAGE, "--timeout", "5"]
    for platform in PLATFORMS:
        args += ["--platform", platform]
    for option, value in urls.items():
        args += [option, value]
    return args


def doctor(side, *extra: str, **overrides: str) -> tuple[int, dict[str, dict]]:
    result = CliRunner().invoke(main, [*base_args(side, **overrides), "--json", *extra])
    assert result.exit_code in (0, 1), result.output
    report = json.loads(result.output)
    return result.exit_code, {check["id"]: check for check in report["checks"]}


def failures(checks: dict[str, dict]) -> dict[str, dict]:
    return {check_id: check for check_id, check in checks.items() if check["status"] == "fail"}


def test_complete_closed_side_passes(closed_side):
    code, checks = doctor(closed_side)
    assert failures(checks) == {}
    assert code == 0
    assert {c["status"] for c in checks.values()} == {"ok"}
    ids = set(checks)
    for package in ("system", "elastic_agent", "fleet_server", EXTRA_PACKAGE):
        assert checks[f"package {package}"]["detail"].startswith(f"{package}-1.0.0 verified by")
    for product in ("elastic-agent", "fleet-server", "endpoint-security"):
        for platform in PLATFORMS:
            assert f"artifact {product} {platform}" in ids
    assert {
        "key url",
        "fleet server key endpoint",
        "tls 127.0.0.1:" + closed_side.url.rsplit(":", 1)[1],
    } <= ids


def test_deep_downloads_and_verifies_the_agent_way(closed_side):
    code, checks = doctor(closed_side, "--deep")
    assert code == 0, failures(checks)
    agent = checks["artifact elastic-agent linux-x86_64"]["detail"]
    assert "verified as the agent does" in agent
    assert (
        "sha512 and signature verified" in checks["artifact fleet-server windows-x86_64"]["detail"]
    )


def test_table_output_names_every_check(closed_side):
    result = CliRunner().invoke(main, base_args(closed_side))
    assert result.exit_code == 0
    assert "package fleet_server" in result.output
    assert "all checks passed" in result.output


def test_a_missing_package(closed_side):
    """fleet_server, which Fleet setup installs, taken out of the registry (SIGHUP: rescan)."""
    zip_path = closed_side.data / "packages" / "fleet_server-1.0.0.zip"
    with moved_away(zip_path, zip_path.with_name(zip_path.name + ".sig")):
        rescan_until(closed_side, lambda names: "fleet_server" not in names)
        code, checks = doctor(closed_side)
    rescan_until(closed_side, lambda names: "fleet_server" in names)
    assert code == 1
    assert list(failures(checks)) == ["package fleet_server"]
    failed = checks["package fleet_server"]
    assert failed["detail"] == f"fleet_server: no version for Kibana {STACK}"
    assert "add package fleet_server to the bundle selection" in failed["fix"]
    assert "fleetgap bundle load" in failed["fix"]


def test_a_package_asked_for_that_is_not_there(closed_side):
    code, checks = doctor(closed_side, "--package", "apache")
    assert code == 1
    assert list(failures(checks)) == ["package apache"]
    assert checks["package apache"]["detail"] == f"apache: no version for Kibana {STACK}"


def rescan_until(side, holds, timeout: float = 60.0) -> None:
    """SIGHUP makes `fleetgap serve` re-read its packages (Granian respawns its workers);
    wait until the old worker has stopped (its log says so) and the index shows it."""
    stopped = side.server.log_text().count("Stopped old worker")
    side.server.process.send_signal(signal.SIGHUP)
    context = ssl.create_default_context(cafile=str(side.ca_cert))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if side.server.log_text().count("Stopped old worker") > stopped:
            response = httpx.get(side.url + "/search", verify=context)
            if holds({package["name"] for package in response.json()}):
                return
        time.sleep(0.2)
    raise AssertionError(f"the registry never rescanned:\n{side.server.log_text()[-2000:]}")


def test_a_missing_asc(closed_side):
    asc = closed_side.data / "downloads" / (agent_path("linux-x86_64") + ".asc")
    with moved_away(asc):
        code, checks = doctor(closed_side)
    assert code == 1
    assert list(failures(checks)) == ["artifact elastic-agent linux-x86_64"]
    failed = checks["artifact elastic-agent linux-x86_64"]
    assert failed["detail"] == f"missing elastic-agent-{STACK}-linux-x86_64.tar.gz.asc (HTTP 404)"
    assert "fleetgap bundle create" in failed["fix"] and "--platform linux-x86_64" in failed["fix"]


def test_a_platform_without_its_agent(closed_side):
    binary = closed_side.data / "downloads" / agent_path("windows-x86_64")
    sidecars = [binary.with_name(binary.name + suffix) for suffix in (".sha512", ".asc")]
    with moved_away(binary, *sidecars):
        code, checks = doctor(closed_side)
    assert code == 1
    assert list(failures(checks)) == ["artifact elastic-agent windows-x86_64"]
    failed = checks["artifact elastic-agent windows-x86_64"]
    name = f"elastic-agent-{STACK}-windows-x86_64.zip"
    assert failed["detail"].startswith(f"missing {name} (HTTP 404), {name}.sha512 (HTTP 404)")
    assert f"add elastic-agent {STACK} for windows-x86_64" in failed["fix"]


def test_the_key_missing(closed_side):
    with moved_away(closed_side.data / "keys" / "GPG-KEY-elastic-agent"):
        code, checks = doctor(closed_side)
    assert code == 1
    failed = checks["key url"]
    assert failed["status"] == "fail"
    assert failed["detail"].endswith("GPG-KEY-elastic-agent: HTTP 404")
    assert "fleetgap keys publish KEY --data DATA" in failed["fix"]
    # the packages cannot be checked without the key Kibana would use either
    assert "no key to check the signature with" in checks["package system"]["detail"]


def test_fleet_server_without_the_key_endpoint(closed_side):
    code, checks = doctor(closed_side, **{"--fleet-server": closed_side.url + "/not-fleet"})
    assert code == 1
    assert list(failures(checks)) == ["fleet server key endpoint"]
    failed = checks["fleet server key endpoint"]
    assert failed["detail"].startswith(
        f"{closed_side.url}/not-fleet/api/agents/upgrades/{STACK}/pgp-public-key: HTTP 404"
    )
    assert "server.pgp.upstream_url" in failed["fix"]
    assert "fleetgap keys install-fleet-server" in failed["fix"]


def test_a_certificate_expiring_in_10_days(closed_side, tmp_path):
    ca_dir = closed_side.tls_dir.with_name("tls-ca")  # where certs create put the CA's key
    tls = create_certificates(["127.0.0.1"], tmp_path / "short", ca=[ca_dir], days=10)
    args = ("--data", str(closed_side.data), "-tls-cert", str(tls.cert), "-tls-key", str(tls.key))
    with fleetgap_serve(*args, log_dir=tmp_path, scheme="https") as short:
        code, checks = doctor(closed_side, **{"--registry": short.url})
    assert code == 1
    port = short.url.rsplit(":", 1)[1]
    assert list(failures(checks)) == [f"tls 127.0.0.1:{port}"]
    failed = checks[f"tls 127.0.0.1:{port}"]
    assert "expires in 9 days" in failed["detail"] or "expires in 10 days" in failed["detail"]
    assert "fleetgap certs create --host 127.0.0.1" in failed["fix"]


def test_a_certificate_from_another_ca(closed_side, tmp_path):
    other = create_certificates(["127.0.0.1"], tmp_path / "other")
    code, checks = doctor(closed_side, **{"--ca-cert": str(other.ca_cert)})
    assert code == 1
    port = closed_side.url.rsplit(":", 1)[1]
    failed = checks[f"tls 127.0.0.1:{port}"]
    assert failed["status"] == "fail"
    assert f"does not chain to --ca-cert {other.ca_cert}" in failed["detail"]
    assert "NODE_EXTRA_CA_CERTS" in failed["fix"]


@pytest.mark.parametrize("scheme", ["https", "http"])
def test_an_unreachable_host(closed_side, scheme):
    dead = f"{scheme}://127.0.0.1:{free_port()}/downloads/"
    code, checks = doctor(closed_side, **{"--artifacts": dead})
    assert code == 1
    failed = failures(checks)
    artifacts = [c for c in failed if c.startswith("artifact ")]
    assert len(artifacts) == 3 * len(PLATFORMS)
    for check_id in artifacts:
        assert checks[check_id]["detail"].endswith("connection refused (nothing listens there)")
        assert "check --artifacts" in checks[check_id]["fix"]
    if scheme == "https":
        tls = next(c for c in failed if c.startswith("tls "))
        assert "connection refused" in checks[tls]["detail"]


def test_bad_stack_version_is_one_error_line(closed_side):
    result = CliRunner().invoke(main, ["doctor", "--stack-version", "nine"])
    assert result.exit_code == 1
    assert result.output.startswith("error: not a version: 'nine'")


def test_packages_signed_by_another_key_than_kibanas(closed_side, tmp_path):
    kibana_key = tmp_path / "kibana-gpg-key.asc"
    kibana_key.write_text(rsa_key("kibana's configured key <k@test.invalid>").public_key.armored)
    code, checks = doctor(closed_side, "--package-key", str(kibana_key))
    assert code == 1
    assert sorted(failures(checks)) == sorted(
        f"package {n}" for n in ("system", "elastic_agent", "fleet_server", EXTRA_PACKAGE)
    )
    failed = checks["package system"]
    assert failed["detail"].startswith(f"system-1.0.0: unverified with --package-key {kibana_key}")
    assert "xpack.fleet.packageVerification.gpgKeyPath" in failed["fix"]


def test_a_host_that_never_answers_times_out(closed_side):
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)  # accepts connections (the kernel does), never answers
        port = silent.getsockname()[1]
        code, checks = doctor(
            closed_side, "--timeout", "1", **{"--registry": f"http://127.0.0.1:{port}"}
        )
    assert code == 1
    failed = checks["registry health"]
    assert failed["detail"] == f"http://127.0.0.1:{port}/health: no answer within 1 s"
    assert "fleetgap serve --data DATA" in failed["fix"]
    assert checks["package system"]["status"] == "fail"


def test_deep_finds_a_binary_its_sidecars_do_not_match(closed_side):
    binary = closed_side.data / "downloads" / agent_path("linux-x86_64")
    original = binary.read_bytes()
    binary.write_bytes(original + b"tampered")
    try:
        shallow, _ = doctor(closed_side)
        code, checks = doctor(closed_side, "--deep")
    finally:
        binary.write_bytes(original)
    assert shallow == 0  # HEAD sees the three files; only downloading tells
    assert code == 1
    assert list(failures(checks)) == ["artifact elastic-agent linux-x86_64"]
    detail = checks["artifact elastic-agent linux-x86_64"]["detail"]
    assert detail.startswith("failed verification of agent binary: checksum mismatch")
    assert (
        "fleetgap artifacts verify --data DATA"
        in checks["artifact elastic-agent linux-x86_64"]["fix"]
    )


def test_unknown_platform_is_one_error_line():
    result = CliRunner().invoke(
        main,
        ["doctor", "--stack-version", STACK, "--platform", "beos-ppc", "--registry", "http://x"],
    )
    assert result.exit_code == 1
    assert result.output.startswith("error: unknown platform beos-ppc (known: linux-x86_64,")
