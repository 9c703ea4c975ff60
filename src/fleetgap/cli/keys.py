"""`fleetgap keys …`: generate signing keys, fetch Elastic's key, publish keys, place
Fleet Server's key file."""

from __future__ import annotations

import os
from pathlib import Path

import click

from fleetgap.cli.console import echo
from fleetgap.cli.options import data_option, passphrase_option, read_passphrase
from fleetgap.errors import FleetgapError
from fleetgap.net import NetOptions
from fleetgap.pgp.elastic_key import AGENT_KEY_FILE, ELASTIC_KEY_URL, fetch_elastic_key
from fleetgap.pgp.fleet_server import install_fleet_server_key
from fleetgap.pgp.keys import (
    SecretKey,
    go_incompatibility,
    key_packets,
    parse_public_key,
    read_public_key,
    utc_text,
    write_atomic,
)
from fleetgap.store import DataDir, exclusive

_DATA = data_option("fleetgap data directory (env FLEETGAP_DATA).", required=True)


@click.group()
def keys() -> None:
    """OpenPGP keys: generate, fetch Elastic's, publish, install for Fleet Server."""


@keys.command()
@click.option("--uid", required=True, help='User ID, e.g. "Example Signing <ops@example.org>".')
@click.option(
    "--secret",
    "secret_path",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Where to write the secret key (mode 0600).",
)
@click.option(
    "--public",
    "public_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Where to write the public key (default: <secret>.pub).",
)
@passphrase_option
def generate(
    uid: str, secret_path: Path, public_path: Path | None, passphrase_file: Path | None
) -> None:
    """Generate an RSA-4096 signing key (the kind Elastic Agent and Fleet Server verify),
    protected by a passphrase when one is given (--passphrase-file, or the environment)."""
    public_path = public_path or secret_path.with_name(secret_path.name + ".pub")
    for path in (secret_path, public_path):
        if path.exists():
            raise FleetgapError(f"{path} exists; refusing to overwrite a key")
    passphrase = read_passphrase(passphrase_file)
    key = SecretKey.generate(uid)
    if passphrase is not None:
        key = key.protected(passphrase)
    key.write(secret_path, public_path)
    echo(f"generated {key.public_key}")
    protection = "protected by the passphrase" if passphrase is not None else "no passphrase"
    echo(f"secret key: {secret_path} (mode 0600, {protection})\npublic key: {public_path}")


@keys.command()
@click.argument("key_file", type=click.Path(dir_okay=False, exists=True, path_type=Path))
def show(key_file: Path) -> None:
    """Fingerprint, key IDs and user IDs of a key file, and whether Go can verify with it."""
    key = read_public_key(key_file)
    echo(f"fingerprint: {key.fingerprint}")
    echo(f"key id:      {key.key_id}")
    for uid in key.user_ids:
        echo(f"user id:     {uid}")
    for part in key.components:
        usage = "sign" if part.can_sign else "no sign"
        standing = f"; unusable: {part.unusable}" if part.unusable else ""
        expiry = f"; expires {utc_text(part.expires)}" if part.expires else ""
        echo(f"key:         {part.key_id} ({usage}{expiry}{standing})")
    if key.weak_self_signatures:
        echo("note:        SHA-1 self-signatures (the agent accepts them, FIPS may not)")
    refused = next((c.unusable for c in key.components if c.key_refused), None)
    problem = go_incompatibility(key_packets(key.armored)) or refused
    echo(f"agent (Go):  {'cannot use: ' + problem if problem else 'ok'}")


@keys.command("fetch-elastic")
@_DATA
@click.option("--url", default=ELASTIC_KEY_URL, show_default=True)
@click.option("--ca-cert", type=click.Path(dir_okay=False, exists=True, path_type=Path))
@click.option("--proxy", help="HTTP(S) proxy URL (default: HTTPS_PROXY from the env).")
def fetch_elastic(data_dir: Path, url: str, ca_cert: Path | None, proxy: str | None) -> None:
    """Fetch Elastic's signing key (connected side), check its pinned fingerprint, keep it
    in DATA/keys/."""
    fetched = fetch_elastic_key(data_dir, url=url, net=NetOptions(proxy=proxy, ca_cert=ca_cert))
    echo(f"Elastic's key {fetched.key.fingerprint} verified (pinned fingerprint)")
    for path in fetched.written:
        echo(f"wrote {path}")


@keys.command()
@click.argument("key_file", type=click.Path(dir_okay=False, exists=True, path_type=Path))
@_DATA
def publish(key_file: Path, data_dir: Path) -> None:
    """Serve KEY_FILE (an organisation's public key) as DATA/keys/GPG-KEY-elastic-agent."""
    body = key_file.read_bytes()
    key = parse_public_key(body)
    data = DataDir(data_dir)
    target = data.keys / AGENT_KEY_FILE
    with exclusive(data.load_lock, "fleetgap keys publish"):
        write_atomic(target, key.armored.encode(), mode=0o644)
    echo(f"published {key} as {target}")


@keys.command("install-fleet-server")
@click.argument("fleet_server_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "--key",
    "key_file",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="Public key to install (default: DATA/keys/GPG-KEY-elastic-agent).",
)
@data_option("fleetgap data directory (env FLEETGAP_DATA).")
def install_fleet_server(
    fleet_server_dir: Path, key_file: Path | None, data_dir: Path | None
) -> None:
    """Write FLEET_SERVER_DIR/elastic-agent-upgrade-keys/default.pgp, mode 0600."""
    if key_file is None:
        if data_dir is None:
            raise FleetgapError(
                "give --key KEYFILE or --data DIR (with keys/GPG-KEY-elastic-agent)"
            )
        key_file = data_dir / "keys" / AGENT_KEY_FILE
        if not key_file.is_file():
            raise FleetgapError(f"{key_file} does not exist: run `fleetgap keys fetch-elastic`")
    if not os.path.isdir(fleet_server_dir):
        raise FleetgapError(f"{fleet_server_dir} is not a directory")
    target, key = install_fleet_server_key(fleet_server_dir, key_file.read_bytes())
    echo(f"installed {key} as {target} (mode 0600)")
