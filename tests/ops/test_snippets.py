"""`fleetgap config …`: the YAML parses to the settings Kibana, Fleet Server and agents
read; the download-source JSON has the fields Kibana's API takes."""

from __future__ import annotations

import json
from pathlib import Path

import yaml
from click.testing import CliRunner

from fleetgap.cli import main

REGISTRY = "https://epr.internal:8080"
ARTIFACTS = "https://epr.internal:8080/downloads/"
KEY_URL = "https://epr.internal:8080/GPG-KEY-elastic-agent"
# spec: kibana-fleet-client §9, what POST /api/fleet/agent_download_sources takes
API_FIELDS = {"id", "name", "host", "is_default", "proxy_id", "ssl", "secrets", "auth"}
CA_PEM = "-----BEGIN CERTIFICATE-----\nMIIBfake\n-----END CERTIFICATE-----\n"


def run(*args: str) -> str:
    result = CliRunner().invoke(main, ["config", *args])
    assert result.exit_code == 0, result.output
    return result.output


def test_kibana_yml_sets_air_gapped_registry_key_and_ca(tmp_path):
    text = run(
        "kibana",
        "--registry",
        REGISTRY + "/",
        "--proxy",
        "http://proxy:3128",
        "--ca-cert",
        "/etc/kibana/ca.crt",
        "--gpg-key-path",
        "/etc/kibana/key.asc",
    )
    settings = yaml.safe_load(text)
    assert settings == {
        "xpack.fleet.isAirGapped": True,
        "xpack.fleet.registryUrl": REGISTRY,
        "xpack.fleet.registryProxyUrl": "http://proxy:3128",
        "xpack.fleet.packageVerification.gpgKeyPath": "/etc/kibana/key.asc",
    }
    assert "# NODE_EXTRA_CA_CERTS=/etc/kibana/ca.crt\n" in text


def test_kibana_yml_without_proxy_has_no_proxy_setting():
    settings = yaml.safe_load(run("kibana", "--registry", REGISTRY))
    assert "xpack.fleet.registryProxyUrl" not in settings
    assert settings["xpack.fleet.isAirGapped"] is True


def test_fleet_server_yml_points_pgp_upstream_at_the_key_url():
    text = run("fleet-server", "--key-url", KEY_URL, "--ca-cert", "/etc/fleet/ca.crt")
    server = yaml.safe_load(text)["inputs"][0]
    assert server["type"] == "fleet-server"
    assert server["server"]["pgp"]["upstream_url"] == KEY_URL
    assert server["server"] == {"pgp": {"upstream_url": KEY_URL}}
    assert "# SSL_CERT_FILE=/etc/fleet/ca.crt\n" in text


def test_agent_yml_with_a_proxy():
    text = run("agent", "--artifacts", ARTIFACTS, "--proxy", "http://proxy:3128")
    assert yaml.safe_load(text)["agent"]["download"] == {
        "sourceURI": ARTIFACTS,
        "proxy_url": "http://proxy:3128",
    }


def test_agent_yml_sets_source_uri_and_its_ca():
    text = run("agent", "--artifacts", ARTIFACTS, "--ca-cert", "/etc/agent/ca.crt")
    download = yaml.safe_load(text)["agent"]["download"]
    assert download == {
        "sourceURI": ARTIFACTS,
        "ssl": {"certificate_authorities": ["/etc/agent/ca.crt"]},
    }


def test_download_source_body_has_exactly_the_api_fields(tmp_path):
    ca = tmp_path / "ca.crt"
    ca.write_text(CA_PEM)
    body = json.loads(
        run(
            "download-source",
            "--artifacts",
            ARTIFACTS,
            "--ca-cert",
            str(ca),
            "--name",
            "closed network",
        )
    )
    assert set(body) <= API_FIELDS
    assert body == {
        "name": "closed network",
        "host": ARTIFACTS,
        "is_default": True,
        "ssl": {"certificate_authorities": [CA_PEM]},
    }


def test_download_source_not_default_and_proxy_id():
    body = json.loads(
        run(
            "download-source",
            "--artifacts",
            ARTIFACTS,
            "--no-default",
            "--proxy-id",
            "internal-proxy",
        )
    )
    assert body == {
        "name": "fleetgap",
        "host": ARTIFACTS,
        "is_default": False,
        "proxy_id": "internal-proxy",
    }


def test_missing_url_is_one_error_line():
    result = CliRunner().invoke(main, ["config", "agent"])
    assert result.exit_code == 1
    assert result.output == "error: `fleetgap config agent` needs --artifacts\n"


def test_defend_settings_per_os_with_the_ca_as_pem(tmp_path):
    ca = tmp_path / "ca.pem"
    ca.write_text(CA_PEM)
    text = run("defend", "--url", REGISTRY + "/", "--ca-cert", str(ca))
    settings = yaml.safe_load(text)
    assert settings == {
        **{f"{os}.advanced.artifacts.global.base_url": REGISTRY for os in ("linux", "mac")},
        "windows.advanced.artifacts.global.base_url": REGISTRY,
        **{f"{os}.advanced.artifacts.global.ca_cert": CA_PEM for os in ("linux", "mac")},
        "windows.advanced.artifacts.global.ca_cert": CA_PEM,
    }
    assert "manifest_relative_url empty" in text
    assert "Endpoint.policy.applied.artifacts.global.version" in text


def test_defend_needs_a_base_url_without_downloads():
    for args in ([], ["--url", ARTIFACTS], ["--url", REGISTRY + "/?a=b"], ["--url", "registry"]):
        result = CliRunner().invoke(main, ["config", "defend", *args])
        assert result.exit_code == 1
        assert len(result.output.strip().splitlines()) == 1


HOSTILE = "\nxpack.fleet.registryProxyUrl: http://x"


def test_a_value_with_a_line_break_is_refused_by_every_snippet():
    cases = [
        ("kibana", "--registry", REGISTRY, "--ca-cert", "/etc/ca.crt" + HOSTILE),
        ("kibana", "--registry", REGISTRY, "--gpg-key-path", "/etc/key.asc" + HOSTILE),
        ("kibana", "--registry", REGISTRY + HOSTILE),
        ("fleet-server", "--key-url", KEY_URL, "--ca-cert", "/etc/ca.crt" + HOSTILE),
        ("fleet-server", "--key-url", KEY_URL + "\rx: 1"),
        ("agent", "--artifacts", ARTIFACTS, "--proxy", "http://p:3128" + HOSTILE),
        ("download-source", "--artifacts", ARTIFACTS, "--name", "fleetgap\x1b[2J"),
    ]
    for args in cases:
        result = CliRunner().invoke(main, ["config", *args])
        assert result.exit_code == 1, (args, result.output)
        assert result.output.count("\n") == 1 and result.output.startswith("error: --"), args
        assert "control character" in result.output


def test_the_readme_says_server_ssl_enabled_only_if_config_fleet_server_writes_it():
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    block = readme.split("fleetgap config fleet-server --key-url", 1)[1]
    block = block.split("fleetgap config agent", 1)[0]
    settings = yaml.safe_load(run("fleet-server", "--key-url", KEY_URL))
    server = settings["inputs"][0]["server"]
    writes_it = server.get("ssl", {}).get("enabled") is True
    assert ("server.ssl.enabled" in block) == writes_it


def test_the_ssl_cert_file_comment_says_what_the_printed_value_is():
    text = run("fleet-server", "--key-url", KEY_URL, "--ca-cert", "/etc/fleet/ca.crt")
    comments = " ".join(line[2:] for line in text.splitlines() if line.startswith("# "))
    assert "SSL_CERT_FILE=/etc/fleet/ca.crt" in comments
    before = comments.split("SSL_CERT_FILE=", 1)[0]
    assert "bundle" not in before and "private CA" in before
