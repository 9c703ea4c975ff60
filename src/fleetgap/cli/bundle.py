"""`fleetgap bundle …`: carry packages, artifacts and keys across the air gap.

Closed side: `verify`, `inspect`, `load`, `receipt`. Connected side (`plan`, `create`) adds
its commands to this group too; each command is its own function.
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from fleetgap.cli.options import data_option


@click.group()
def bundle() -> None:
    """Signed bundles: verify, inspect, load into a data directory, receipts for deltas."""


@bundle.command()
@data_option("fleetgap data directory (env FLEETGAP_DATA).", required=True, exists=True)
def receipt(data_dir) -> None:
    """Print what DIR holds (paths, sizes, SHA-256) as JSON, for `bundle create --since`."""
    from fleetgap.bundle.receipt import holding_receipt
    from fleetgap.store import DataDir

    click.echo(json.dumps(holding_receipt(DataDir(data_dir)).as_dict(), indent=1))


@bundle.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the parts and manifest as JSON.")
def inspect(files: tuple[Path, ...], as_json: bool) -> None:
    """Show what FILE… claims (parts, manifest), without checking: see `bundle verify`."""
    from fleetgap.bundle.inspect import inspect_bundle

    found = inspect_bundle(files)
    if as_json:
        click.echo(json.dumps(found.as_dict(), indent=1))
        return
    manifest = found.manifest
    kind = "delta" if manifest.delta else "full"
    click.echo(f"bundle {manifest.bundle_id} ({kind}), sequence {manifest.sequence}")
    click.echo(f"created {manifest.created} by fleetgap {manifest.fleetgap_version}")
    click.echo(f"manifest signature: {'present' if found.signed else 'none (unsigned)'}")
    click.echo(f"parts: {len(found.parts)}")
    carried = manifest.carried
    click.echo(
        f"files: {len(manifest.files)} listed, {len(carried)} carried "
        f"({manifest.carried_bytes} bytes)"
    )
    for entry in manifest.files:
        where = "" if entry.in_bundle else "  (held on the closed side)"
        click.echo(f"  {entry.path}  {entry.size}  {entry.verified_by}{where}")


@bundle.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option(
    "--trust-key",
    "trust_keys",
    multiple=True,
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="Public key trusted to sign bundle manifests (repeatable).",
)
def verify(files: tuple[Path, ...], trust_keys: tuple[Path, ...]) -> None:
    """Read every byte of FILE…, check the manifest signature (with --trust-key), every
    member's SHA-256 and every part; one line per check."""
    from fleetgap.bundle.reader import read_bundle
    from fleetgap.pgp.keys import read_public_key

    keys = [read_public_key(path) for path in trust_keys]
    result = read_bundle(files, trust_keys=keys, report=lambda check: click.echo(check.line()))
    click.echo(f"all {len(result.checks)} checks passed: bundle {result.manifest.bundle_id}")
