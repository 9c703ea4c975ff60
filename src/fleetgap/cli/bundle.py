"""`fleetgap bundle …`: carry packages, artifacts and keys across the air gap.

Closed side: `verify`, `inspect`, `load`, `receipt`. Connected side (`plan`, `create`) adds
its commands to this group too; each command is its own function.
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from fleetgap.cli.options import data_option, key_files_option


@click.group()
def bundle() -> None:
    """Signed bundles: verify, inspect, load into a data directory, receipts for deltas."""


def _signers(trust_key_files, data_dir):
    from fleetgap.pgp.keys import read_public_key

    files = list(trust_key_files)
    if not files and data_dir is not None:
        folder = Path(data_dir) / "state" / "bundle-signers"
        files = sorted(p for p in folder.glob("*") if p.is_file()) if folder.is_dir() else []
    return [read_public_key(path) for path in files]


def _trust(trust_key_files, key_files, allow_unsigned, data_dir=None):
    from fleetgap.bundle.verify import Trust
    from fleetgap.pgp.elastic_key import load_elastic_key
    from fleetgap.pgp.keys import parse_public_key, read_public_key

    file_keys = [read_public_key(path) for path in key_files]
    elastic = load_elastic_key(Path(data_dir)) if data_dir is not None else None
    if elastic is not None:
        file_keys.append(parse_public_key(elastic))
    return Trust(_signers(trust_key_files, data_dir), file_keys, allow_unsigned)


_files = click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path))
_trust_key = click.option(
    "--trust-key",
    "trust_key_files",
    multiple=True,
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="Public key trusted to sign bundle manifests (repeatable).",
)
_allow_unsigned = click.option(
    "--allow-unsigned", is_flag=True, help="Accept a bundle without a manifest signature."
)


@bundle.command("verify")
@_files
@_trust_key
@key_files_option("Extra key for package and artifact signatures (e.g. a test key).")
@_allow_unsigned
@data_option("For a delta: the data directory holding the keys and sidecars it relies on.")
def verify_command(files, trust_key_files, key_files, allow_unsigned, data_dir) -> None:
    """Read every byte of a bundle and check every hash and signature."""
    from fleetgap.bundle.verify import verify_bundle

    trust = _trust(trust_key_files, key_files, allow_unsigned)
    present = Path(data_dir) if data_dir is not None else None
    result = verify_bundle(files, trust, on_check=lambda c: click.echo(c.line()), present=present)
    click.echo(f"bundle {result.manifest.bundle_id}: all {len(result.checks)} checks passed")


@bundle.command("inspect")
@_files
@click.option("--json", "as_json", is_flag=True, help="Print the manifest as JSON.")
def inspect_command(files, as_json) -> None:
    """Show a bundle's manifest (reads the manifest only; `verify` checks the rest)."""
    from fleetgap.bundle.reader import BundleReader, find_parts

    with BundleReader(find_parts(files)) as reader:
        manifest = reader.manifest
        signed = reader.signature is not None
    if as_json:
        click.echo(json.dumps({**manifest.as_dict(), "signed": signed}, indent=1))
        return
    click.echo(
        f"bundle {manifest.bundle_id} sequence {manifest.sequence} created "
        f"{manifest.created} by fleetgap {manifest.fleetgap_version}"
    )
    click.echo(
        f"{'delta' if manifest.delta else 'full'}, {'signed' if signed else 'UNSIGNED'}, "
        f"{len(manifest.carried)} files carried ({manifest.carried_bytes} bytes), "
        f"{len(manifest.files)} in the state it leads to"
    )
    for entry in manifest.files:
        mark = " " if entry.in_bundle else "-"
        click.echo(
            f"{mark} {entry.size:>12} {entry.sha256[:16]} {entry.verified_by:<24} {entry.path}"
        )


@bundle.command("load")
@_files
@data_option("The fleetgap data directory to load into.", required=True)
@_trust_key
@key_files_option("Extra key for package and artifact signatures (e.g. a test key).")
@_allow_unsigned
@click.option("--allow-downgrade", is_flag=True, help="Load a lower sequence than the newest.")
@click.option("--dry-run", is_flag=True, help="Verify and report; change nothing.")
def load_command(
    files, data_dir, trust_key_files, key_files, allow_unsigned, allow_downgrade, dry_run
) -> None:
    """Verify a bundle and publish it into DATA atomically (all or nothing)."""
    from fleetgap.bundle.load import load
    from fleetgap.store import DataDir

    trust = _trust(trust_key_files, key_files, allow_unsigned, data_dir)
    result = load(
        files, DataDir(Path(data_dir)), trust, allow_downgrade=allow_downgrade, dry_run=dry_run
    )
    for check in result.checks:
        click.echo(check.line())
    if result.status == "already loaded":
        click.echo(f"bundle {result.bundle_id} is already loaded; nothing to do")
    elif result.status == "dry run":
        click.echo(
            f"dry run: bundle {result.bundle_id} verified; would publish "
            f"{len(result.published)} files"
        )
    else:
        click.echo(
            f"loaded bundle {result.bundle_id} (sequence {result.sequence}): "
            f"{len(result.published)} files published"
        )


@bundle.command("receipt")
@data_option("The fleetgap data directory.", required=True, exists=True)
@click.option(
    "--sign-key",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="Secret key to sign the receipt with.",
)
def receipt_command(data_dir, sign_key) -> None:
    """Print what DATA holds (paths, SHA-256), for `bundle create --since`."""
    from fleetgap.bundle.receipt import make_receipt
    from fleetgap.pgp.keys import SecretKey
    from fleetgap.store import DataDir

    key = SecretKey.read(sign_key) if sign_key is not None else None
    click.echo(json.dumps(make_receipt(DataDir(Path(data_dir)), key), indent=1))
