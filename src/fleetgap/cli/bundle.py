"""`fleetgap bundle …`: carry packages, artifacts and keys across the air gap.

Closed side: `verify`, `inspect`, `load`, `receipt`. Connected side (`plan`, `create`) adds
its commands to this group too; each command is its own function.
"""

from __future__ import annotations

import click


@click.group()
def bundle() -> None:
    """Signed bundles: verify, inspect, load into a data directory, receipts for deltas."""
