"""`fleetgap bundle …`: carry packages, artifacts and keys across the air gap.

Closed side: `verify`, `inspect`, `load`, `receipt`. Connected side (`plan`, `create`) adds
its commands to this group too; each command is its own function.
"""

from __future__ import annotations

import json

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
