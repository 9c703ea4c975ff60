"""The settings that point Kibana, Fleet Server and agents at fleetgap, ready to paste.

YAML is written by PyYAML (so what is pasted parses); the download-source body holds only
fields Kibana's API takes. spec: kibana-fleet-client §1 (kibana.yml, NODE_EXTRA_CA_CERTS),
§8.2 (isAirGapped), §9 (agent_download_sources); fleet-server-pgp §3, §5, §8
(server.pgp.upstream_url, SSL_CERT_FILE); agent-artifacts §5 (agent.download.*);
docs/defend-artifacts.md (Elastic Defend's advanced.artifacts.global.* settings).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from fleetgap.errors import FleetgapError

SNIPPETS = ("kibana", "fleet-server", "agent", "download-source", "defend")
DEFEND_OSES = ("linux", "mac", "windows")
DEFAULT_GPG_KEY_PATH = "/etc/kibana/fleetgap/GPG-KEY-elasticsearch"


@dataclass(frozen=True)
class Deployment:
    """Where fleetgap answers, as the other hosts reach it."""

    registry: str | None = None  # https://registry:8080
    artifacts: str | None = None  # https://registry:8080/downloads/
    key_url: str | None = None  # https://registry:8080/GPG-KEY-elastic-agent
    ca_cert: Path | None = None  # the private CA (PEM), as a path on the target host
    proxy: str | None = None  # Kibana's registryProxyUrl
    name: str = "fleetgap"  # the download source's name
    is_default: bool = True
    proxy_id: str | None = None  # a Fleet proxy id for the download source
    gpg_key_path: str = DEFAULT_GPG_KEY_PATH  # where Kibana finds the package key
    url: str | None = None  # Elastic Defend's artifacts base_url: https://registry:8080


# the option that gives each field, for errors
_OPTIONS = {
    "registry": "--registry",
    "artifacts": "--artifacts",
    "key_url": "--key-url",
    "ca_cert": "--ca-cert",
    "proxy": "--proxy",
    "name": "--name",
    "proxy_id": "--proxy-id",
    "gpg_key_path": "--gpg-key-path",
    "url": "--url",
}


def snippet(kind: str, deployment: Deployment) -> str:
    """The text to paste for `kind` (one of SNIPPETS)."""
    _refuse_control_characters(deployment)
    if kind == "kibana":
        return kibana_yml(deployment)
    if kind == "fleet-server":
        return fleet_server_yml(deployment)
    if kind == "agent":
        return agent_yml(deployment)
    if kind == "download-source":
        return json.dumps(download_source(deployment), indent=2) + "\n"
    if kind == "defend":
        return defend_settings(deployment)
    raise FleetgapError(f"unknown snippet {kind!r} (known: {', '.join(SNIPPETS)})")


def kibana_yml(d: Deployment) -> str:
    registry = _required(d.registry, "--registry", "kibana")
    settings: dict[str, Any] = {
        "xpack.fleet.isAirGapped": True,
        "xpack.fleet.registryUrl": registry.rstrip("/"),  # Kibana prefixes paths verbatim
    }
    if d.proxy:
        settings["xpack.fleet.registryProxyUrl"] = d.proxy
    settings["xpack.fleet.packageVerification.gpgKeyPath"] = d.gpg_key_path
    notes = [
        "kibana.yml: Fleet with fleetgap as its package registry",
        f"Put the key that signs the packages at {d.gpg_key_path}",
    ]
    if d.ca_cert is not None:
        notes += [
            "Kibana trusts a private CA only through the environment, read at start:",
            f"NODE_EXTRA_CA_CERTS={d.ca_cert}",
        ]
    return _comments(notes) + _dump(settings)


def fleet_server_yml(d: Deployment) -> str:
    key_url = _required(d.key_url, "--key-url", "fleet-server")
    config = {
        "inputs": [
            {
                "type": "fleet-server",
                "server": {"pgp": {"upstream_url": key_url}},
            }
        ]
    }
    notes = [
        "fleet-server.yml (under Elastic Agent: the same server.* keys in the Fleet Server",
        "policy). The key endpoint answers only over TLS (server.ssl, or elastic-agent",
        "install --fleet-server-cert/--fleet-server-cert-key) and without an API key from",
        "Fleet Server 8.16.3 / 8.17.1 / 8.18.0 / 9.0.0 on. Fleet Server fetches",
        "upstream_url only while <pgp.dir>/default.pgp does not exist.",
    ]
    if d.ca_cert is not None:
        notes += [
            "Fleet Server fetches the key trusting the system roots only; to trust the",
            "private CA too, set in its environment (Go adds the file to the roots it",
            "still reads from /etc/ssl/certs):",
            f"SSL_CERT_FILE={d.ca_cert}",
        ]
    return _comments(notes) + _dump(config)


def agent_yml(d: Deployment) -> str:
    artifacts = _required(d.artifacts, "--artifacts", "agent")
    download: dict[str, Any] = {"sourceURI": artifacts}
    if d.ca_cert is not None:
        download["ssl"] = {"certificate_authorities": [str(d.ca_cert)]}
    if d.proxy:
        download["proxy_url"] = d.proxy
    notes = ["elastic-agent.yml (standalone agents): where upgrades download from"]
    if d.key_url:
        notes.append(f"upgrade with: elastic-agent upgrade VERSION --pgp-uri {d.key_url}")
    return _comments(notes) + _dump({"agent": {"download": download}})


def download_source(d: Deployment) -> dict[str, Any]:
    """The body of Kibana's POST /api/fleet/agent_download_sources."""
    artifacts = _required(d.artifacts, "--artifacts", "download-source")
    body: dict[str, Any] = {"name": d.name, "host": artifacts, "is_default": d.is_default}
    if d.proxy_id:
        body["proxy_id"] = d.proxy_id
    if d.ca_cert is not None:
        # the PEM itself: the policy carries it to every agent, whatever their file system
        body["ssl"] = {"certificate_authorities": [_pem(d.ca_cert)]}
    return body


def defend_settings(d: Deployment) -> str:
    """The Elastic Defend integration policy's advanced settings, per OS, that send Endpoint
    to fleetgap for its protection artifacts (docs/defend-artifacts.md): base_url, and the
    CA as PEM text when the server's certificate comes from a private CA."""
    url = _required(d.url, "--url", "defend").rstrip("/")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.fragment:
        raise FleetgapError(
            f"--url {url}: give the server's base URL, http(s)://host[:port][/path], with no "
            "query or fragment (Endpoint appends /downloads/… to it)"
        )
    if url.endswith("/downloads"):
        raise FleetgapError(
            f"--url {url}: give the server's base URL, without /downloads (Endpoint adds "
            "/downloads/endpoint/manifest/… itself)"
        )
    settings: dict[str, Any] = {}
    for system in DEFEND_OSES:
        settings[f"{system}.advanced.artifacts.global.base_url"] = url
    if d.ca_cert is not None:
        pem = _pem(d.ca_cert)
        for system in DEFEND_OSES:
            settings[f"{system}.advanced.artifacts.global.ca_cert"] = pem
    notes = [
        "Elastic Defend integration policy, Advanced settings (Kibana: Security, Manage,",
        "Policies, the policy, Show advanced settings): one value per field below.",
        "Leave *.advanced.artifacts.global.manifest_relative_url empty: once set, Endpoint",
        "no longer puts its own version into the path.",
        "*.advanced.artifacts.global.public_key is not needed for re-hosted artifacts.",
        "Check on an endpoint: Endpoint.policy.applied.artifacts.global.version in its",
        "policy response (metrics-*, endpoint.policy) equals the manifest_version of",
        f"{url}/downloads/endpoint/manifest/artifacts-<version>.zip",
        "(fleetgap doctor --stack-version <version> --defend URL reports it).",
    ]
    return _comments(notes) + yaml.dump(
        settings, Dumper=_BlockDumper, sort_keys=False, default_flow_style=False, width=1000
    )


class _BlockDumper(yaml.SafeDumper):
    """PEM text as a `|` block: pasted line by line, it stays a certificate."""


_BlockDumper.add_representer(
    str,
    lambda dumper, text: dumper.represent_scalar(
        "tag:yaml.org,2002:str", text, style="|" if "\n" in text else None
    ),
)


def _pem(path: Path) -> str:
    try:
        pem = Path(path).read_text("ascii")
    except (OSError, UnicodeDecodeError) as exc:
        raise FleetgapError(f"cannot read --ca-cert {path}: {exc}") from None
    if "-----BEGIN CERTIFICATE-----" not in pem:
        raise FleetgapError(f"--ca-cert {path} holds no PEM certificate")
    return pem.strip() + "\n"


def _refuse_control_characters(d: Deployment) -> None:
    """A value with a line break would write a live setting of its own into the YAML (a
    comment line ends there), so no value may hold a control character."""
    for field, option in _OPTIONS.items():
        value = getattr(d, field)
        if value is None:
            continue
        text = str(value)
        if any(ord(c) < 0x20 or 0x7F <= ord(c) < 0xA0 or c in "\u2028\u2029" for c in text):
            raise FleetgapError(f"{option} holds a control character (e.g. a line break): {text!r}")


def _required(value: str | None, option: str, kind: str) -> str:
    if not value:
        raise FleetgapError(f"`fleetgap config {kind}` needs {option}")
    if not value.startswith(("http://", "https://")):
        raise FleetgapError(f"{option} must be an http:// or https:// URL, not {value!r}")
    return value


def _dump(data: dict[str, Any]) -> str:
    return yaml.safe_dump(data, sort_keys=False, default_flow_style=False)


def _comments(lines: list[str]) -> str:
    return "".join(f"# {line}\n" for line in lines)
