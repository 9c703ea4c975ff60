"""`fleetgap serve`: placeholder until the registry lands."""

import click


@click.command()
def serve() -> None:
    """Serve the package registry, artifacts and keys."""
    raise click.ClickException("not yet")
