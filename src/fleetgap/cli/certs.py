"""`fleetgap certs create`: a private CA and the registry's TLS certificate and key."""

from __future__ import annotations

from pathlib import Path

import click

from fleetgap.ops.certs import create_certificates


@click.group()
def certs() -> None:
    """TLS certificates for the registry (a private CA)."""


@certs.command()
@click.option(
    "--host", "hosts", multiple=True, required=True, help="DNS name or IP address (repeatable)."
)
@click.option(
    "--out", required=True, type=click.Path(file_okay=False, path_type=Path), help="Output dir."
)
@click.option(
    "--ca",
    "ca",
    multiple=True,
    type=click.Path(exists=True, path_type=Path),
    help="Issue from this CA: a directory with ca.crt and ca.key, or the two files.",
)
@click.option(
    "--ca-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Where a new CA's ca.key and ca.crt go, outside OUT. [default: OUT-ca beside OUT]",
)
@click.option("--days", default=397, show_default=True, type=int, help="Server cert validity.")
def create(
    hosts: tuple[str, ...], out: Path, ca: tuple[Path, ...], ca_dir: Path | None, days: int
) -> None:
    """Write server.crt, server.key (0600), ca.crt and tls.env into OUT; a new CA's key
    goes to its own directory (--ca-dir), which the service user is never given."""
    issued = create_certificates(hosts, out, ca=ca, ca_dir=ca_dir, days=days)
    click.echo(
        f"server certificate for {', '.join(hosts)}, valid until {issued.not_after:%Y-%m-%d}"
    )
    if issued.ca_key is not None:
        click.echo(
            f"new CA: {issued.ca_cert}; its key {issued.ca_key} (mode 0600) stays with you, "
            f"not the service: `--ca {issued.ca_key.parent}` issues the next certificate"
        )
    for name, value in issued.env().items():
        click.echo(f"{name}={value}")
    click.echo(f"(also in {issued.env_file})")
