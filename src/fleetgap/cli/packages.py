"""`fleetgap packages sign|verify`: package signatures (`<zip>.sig`) as Kibana judges them."""

from __future__ import annotations

import json
import os
from pathlib import Path

import click

from fleetgap.cli.console import echo
from fleetgap.cli.options import passphrase_option, read_passphrase
from fleetgap.pgp.keys import KeyFileError, SecretKey, read_public_key
from fleetgap.pgp.package_signatures import UNKNOWN, VERIFIED, sign_package, verify_package_file

_ZIP = click.Path(dir_okay=False, exists=True, path_type=Path)


@click.group()
def packages() -> None:
    """Integration package zips: sign them, check their signatures."""


@packages.command()
@click.argument("zips", nargs=-1, required=True, type=_ZIP)
@click.option("--key", "key_file", required=True, type=_ZIP, help="Secret signing key (RSA).")
@click.option(
    "--password-env",
    metavar="VAR",
    help="Environment variable holding the key's password, if it has one.",
)
@passphrase_option
def sign(
    zips: tuple[Path, ...], key_file: Path, password_env: str | None, passphrase_file: Path | None
) -> None:
    """Write ZIP.sig (armored detached signature) for each ZIP."""
    password = os.environ.get(password_env) if password_env else None
    password = password or read_passphrase(passphrase_file)
    key = SecretKey.read(key_file, password)
    for zip_path in zips:
        echo(f"signed {zip_path} -> {sign_package(zip_path, key)}")


@packages.command()
@click.argument("zip_path", type=_ZIP)
@click.option("--key", "key_file", type=_ZIP, help="Kibana's package verification key.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def verify(zip_path: Path, key_file: Path | None, as_json: bool) -> None:
    """Kibana's verdict for ZIP (with ZIP.sig): verified (exit 0), unverified (exit 1),
    unknown (exit 2)."""
    key = None
    if key_file is not None:
        try:
            key = read_public_key(key_file)
        except KeyFileError as exc:  # Kibana only logs a warning and carries on without key
            echo(f"warning: Kibana could not use this key: {exc}", err=True)
    result = verify_package_file(zip_path, key)
    if as_json:
        echo(json.dumps(result.as_dict(), indent=2))
    else:
        echo(f"{result.status}: {result.reason}")
        if result.key_id:
            echo(f"verification_key_id: {result.key_id}")
    if result.status != VERIFIED:
        raise SystemExit(2 if result.status == UNKNOWN else 1)
