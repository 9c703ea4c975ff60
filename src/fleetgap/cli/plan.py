import click


@click.group()
def plan() -> None:
    """Plans."""
