"""`fleetgap agent verify-upgrade`: would a real agent accept this upgrade, and if not, why."""

from __future__ import annotations

import json
from pathlib import Path

import click

from fleetgap.artifacts.agent_upgrade import (
    ELASTIC_REMOTE_KEY_URL,
    KEY_FETCH_TIMEOUT,
    UpgradeCheck,
    verify_upgrade,
)
from fleetgap.artifacts.urls import DEFAULT_SOURCE
from fleetgap.cli.console import echo
from fleetgap.cli.options import data_option
from fleetgap.errors import FleetgapError
from fleetgap.net import NetOptions
from fleetgap.pgp.elastic_key import check_elastic_key, load_elastic_key

_FILE = click.Path(dir_okay=False, exists=True, path_type=Path)


@click.group()
def agent() -> None:
    """Check things the way Elastic Agent does."""


@agent.command("verify-upgrade")
@click.argument("version")
@click.option(
    "--source-uri",
    default=DEFAULT_SOURCE,
    show_default=True,
    help="agent.download.sourceURI (or the upgrade's source_uri); file://DIR for a drop dir.",
)
@click.option("--os", "os_name", default="linux", show_default=True, help="Agent OS (Go name).")
@click.option("--arch", default="amd64", show_default=True, help="Agent arch (Go name).")
@click.option("--fips", is_flag=True, help="The agent is a FIPS build.")
@click.option("--pgp-path", type=_FILE, help="As `elastic-agent upgrade --pgp-path`.")
@click.option("--pgp", help="As `elastic-agent upgrade --pgp` (armored key text).")
@click.option("--pgp-uri", help="As `elastic-agent upgrade --pgp-uri` (https only).")
@click.option("--skip-default-pgp", is_flag=True, help="Drop the embedded Elastic key.")
@click.option("--fleet-url", help="The agent's Fleet Server host (adds its key URL last).")
@click.option(
    "--remote-key-url",
    default=ELASTIC_REMOTE_KEY_URL,
    show_default=True,
    help="The URL the agent always appends (point it at your mirror to test one).",
)
@click.option("--elastic-key", type=_FILE, help="Elastic's key file (default: DATA/keys/).")
@data_option("fleetgap data directory (env FLEETGAP_DATA), for Elastic's key.")
@click.option(
    "--ca-cert", type=_FILE, help="agent.download.ssl.certificate_authorities (PEM bundle)."
)
@click.option("--proxy", help="agent.download.proxy_url.")
@click.option(
    "--key-timeout",
    type=float,
    default=KEY_FETCH_TIMEOUT,
    show_default=True,
    help="Seconds per remote key URL (the agent's is 30).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the verdict as JSON.")
def verify_upgrade_command(
    version: str,
    source_uri: str,
    os_name: str,
    arch: str,
    fips: bool,
    pgp_path: Path | None,
    pgp: str | None,
    pgp_uri: str | None,
    skip_default_pgp: bool,
    fleet_url: str | None,
    remote_key_url: str,
    elastic_key: Path | None,
    data_dir: Path | None,
    ca_cert: Path | None,
    proxy: str | None,
    key_timeout: float,
    as_json: bool,
) -> None:
    """Download VERSION's agent package, .sha512 and .asc as an agent would and verify them
    with the agent's key order; exit 1 with the agent's error if it would refuse."""
    embedded = None
    if elastic_key is not None:
        embedded = elastic_key.read_bytes()
        check_elastic_key(embedded, origin=str(elastic_key))
    elif not skip_default_pgp:
        embedded = load_elastic_key(data_dir)
    verdict = verify_upgrade(
        UpgradeCheck(
            version=version,
            source_uri=source_uri,
            os=os_name,
            arch=arch,
            fips=fips,
            embedded_key=embedded,
            skip_default_pgp=skip_default_pgp,
            pgp_path=pgp_path,
            pgp=pgp,
            pgp_uri=pgp_uri,
            remote_key_url=remote_key_url,
            fleet_url=fleet_url,
            net=NetOptions(proxy=proxy, ca_cert=ca_cert),
            key_timeout=key_timeout,
        )
    )
    if as_json:
        echo(
            json.dumps(
                {
                    "passed": verdict.passed,
                    "artifact": verdict.artifact,
                    "failed_step": verdict.failed_step,
                    "error": verdict.error,
                    "verified_by": verdict.verified_by,
                    "log": list(verdict.log),
                },
                indent=2,
            )
        )
        if not verdict.passed:
            raise SystemExit(1)
        return
    for line in verdict.log:
        echo(line)
    if not verdict.passed:
        raise FleetgapError(f"the agent would refuse this upgrade (UPG_FAILED): {verdict.error}")
    echo(f"ok: {verdict.artifact} passes the agent's checks ({verdict.verified_by})")
