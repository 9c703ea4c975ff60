"""`fleetgap verify artifact FILE`: the `.sha512` and the `.asc`, checked the agent's way."""

from __future__ import annotations

import json
from pathlib import Path

import click

from fleetgap.cli.console import echo
from fleetgap.cli.options import data_option, key_files_option
from fleetgap.errors import FleetgapError
from fleetgap.pgp.artifact_check import check_artifact, default_keys
from fleetgap.pgp.keys import read_public_key


@click.group()
def verify() -> None:
    """Verify files the way Elastic's components do."""


@verify.command()
@click.argument("file", type=click.Path(dir_okay=False, exists=True, path_type=Path))
@key_files_option(
    "Public key to try (repeatable, tried in order). Default: DATA/keys/ Elastic keys."
)
@data_option("fleetgap data directory (env FLEETGAP_DATA), for the default keys.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def artifact(file: Path, key_files: tuple[Path, ...], data_dir: Path | None, as_json: bool) -> None:
    """Check FILE against FILE.sha512 and FILE.asc; print which key verified it."""
    keys = [(str(p), read_public_key(p)) for p in key_files] or default_keys(data_dir)
    if not keys:
        raise FleetgapError("no keys: pass --key KEYFILE, or --data DIR with keys/ fetched")
    result = check_artifact(file, keys)
    if as_json:
        echo(json.dumps(result.as_dict(), indent=2))
        return
    echo(f"sha512 ok: {result.sha512}")
    echo(f"signature ok: verified by {result.key} (from {result.key_origin})")
