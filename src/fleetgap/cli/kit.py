"""`fleetgap kit create`: the offline kit of fleetgap itself (bundle/kit.py)."""

from __future__ import annotations

import platform as host
import sys
from pathlib import Path

import click

from fleetgap.cli.distribution import net_options
from fleetgap.cli.options import passphrase_option, read_passphrase


@click.group()
def kit() -> None:
    """The offline kit: fleetgap and its dependencies as wheels, with install.sh."""


@kit.command("create")
@click.option(
    "--out", required=True, type=click.Path(dir_okay=False, path_type=Path), help="Kit tar."
)
@click.option(
    "--platform",
    "platforms",
    multiple=True,
    type=click.Choice(["linux-x86_64", "linux-arm64"]),
    help="Closed-side platform (repeatable). Default: this machine's.",
)
@click.option(
    "--python",
    "pythons",
    multiple=True,
    type=click.Choice(["3.11", "3.12", "3.13"]),
    help="Closed-side Python version (repeatable). Default: this one.",
)
@click.option(
    "--find-links",
    type=click.Path(file_okay=False, exists=True, path_type=Path),
    help="Take every wheel from this folder (a site's own package mirror), not the index.",
)
@click.option(
    "--sign-key",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="Secret key (`fleetgap keys generate`) to sign SHA256SUMS with.",
)
@passphrase_option
@net_options
def create(
    out, platforms, pythons, find_links, sign_key, passphrase_file, proxy, ca_cert, retries
) -> None:
    """Fetch the wheels (as pip does) and write one tar: fleetgap-kit-VERSION/."""
    from fleetgap.bundle.kit import KitTarget, create_kit, kit_name
    from fleetgap.net import NetOptions
    from fleetgap.pgp.keys import SecretKey

    target = KitTarget(
        tuple(dict.fromkeys(platforms)) or (_this_platform(),),
        tuple(dict.fromkeys(pythons)) or (f"{sys.version_info[0]}.{sys.version_info[1]}",),
    )
    signer = SecretKey.read(sign_key, read_passphrase(passphrase_file)) if sign_key else None
    options = NetOptions(proxy=proxy, ca_cert=ca_cert, attempts=retries + 1)
    names = create_kit(out, target, find_links=find_links, sign_key=signer, net_options=options)
    click.echo(
        f"{out}: {kit_name()}/ with {len(names)} wheels for {', '.join(target.platforms)}, "
        f"Python {', '.join(target.pythons)}"
        + (f"; signed by {signer.fingerprint}" if signer else "")
    )
    click.echo(f"closed side: tar xf {Path(out).name} && sh {kit_name()}/install.sh")


def _this_platform() -> str:
    return {"x86_64": "linux-x86_64", "aarch64": "linux-arm64"}.get(host.machine(), "linux-x86_64")
