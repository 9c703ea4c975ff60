"""`fleetgap distribution SELECTION`: the Go `distribution` tool, for people who use it.

spec: epr-api §12 — the same config file; `print` lists the resolved packages, `download`
writes each `.zip` and `.zip.sig` flat into its destination (by the basename of the search
result's paths), skipping pairs already there and valid. Unlike the Go tool, a fresh
download is verified too before it is put in place, and a failure is one line.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from pathlib import Path
from posixpath import basename

import click

from fleetgap.bundle.packages import PackageFetcher, Target
from fleetgap.bundle.resolve import PackageRef, resolve_packages
from fleetgap.bundle.selection import DownloadAction, PrintAction, load_selection
from fleetgap.cli.console import echo
from fleetgap.cli.options import (
    key_files_option,
    report_unmatched,
    retries_option,
    strict_option,
)
from fleetgap.errors import FleetgapError
from fleetgap.net import Net, NetOptions
from fleetgap.pgp.elastic_key import ELASTIC_KEY_URL, check_elastic_key
from fleetgap.pgp.keys import PublicKey, read_public_key


def net_options(command: Callable) -> Callable:
    """`--proxy`, `--ca-cert` and `--retries`, for commands that reach Elastic's hosts."""
    command = retries_option(command)
    command = click.option(
        "--ca-cert",
        type=click.Path(dir_okay=False, exists=True, path_type=Path),
        help="PEM CA bundle to trust instead of the system roots.",
    )(command)
    return click.option("--proxy", help="HTTP(S) proxy URL (default: HTTPS_PROXY from the env).")(
        command
    )


def trusted_keys(net: Net, key_files: Sequence[Path]) -> tuple[PublicKey, ...]:
    """`--key` files, else Elastic's key from artifacts.elastic.co, pinned by fingerprint."""
    if key_files:
        return tuple(read_public_key(path) for path in key_files)
    return (check_elastic_key(net.get_bytes(ELASTIC_KEY_URL), origin=ELASTIC_KEY_URL),)


@click.command()
@click.argument("selection_file", type=click.Path(dir_okay=False, exists=True, path_type=Path))
@key_files_option(
    "Trusted package signing key (armored); repeatable. Default: Elastic's key (pinned)."
)
@net_options
@strict_option
@click.option("--parallel", default=4, show_default=True, type=click.IntRange(1, 64))
def distribution(selection_file, key_files, proxy, ca_cert, retries, strict, parallel) -> None:
    """Resolve a distribution config (matrix × queries + pinned packages) and run its actions."""
    selection = load_selection(selection_file)
    options = NetOptions(
        attempts=retries + 1, proxy=proxy, ca_cert=ca_cert, connections=max(parallel, 8)
    )
    failed: list[str] = []
    with Net(options) as net:
        packages = resolve_packages(selection, net, parallel, report_unmatched(strict))
        for action in selection.actions:
            if isinstance(action, PrintAction):
                for ref in packages:
                    echo(f"-  {ref.name} {ref.version}")  # Go: Println("- ", name, version)
            elif isinstance(action, DownloadAction):
                failed += _download(net, selection.address, action, packages, key_files, parallel)
    echo(f"{len(packages)} packages total")
    for line in failed:
        echo(f"FAILED {line}", err=True)
    if failed:
        raise FleetgapError(f"{len(failed)} package(s) failed download or verification")


def _download(
    net: Net,
    address: str,
    action: DownloadAction,
    packages: Sequence[PackageRef],
    key_files: Sequence[Path],
    parallel: int,
) -> list[str]:
    destination = action.destination
    destination.mkdir(parents=True, exist_ok=True)
    fetcher = PackageFetcher(
        net, action.address or address, trusted_keys(net, key_files), destination / ".incoming"
    )
    targets = [
        Target(ref, destination / _name(ref.download), destination / _name(ref.signature_path))
        for ref in packages
    ]
    results = fetcher.fetch_all(targets, parallel)
    with contextlib.suppress(OSError):
        (destination / ".incoming").rmdir()  # only when empty: partial downloads stay
    reused = sum(1 for r in results if r.reused)
    fetched = sum(1 for r in results if r.key is not None and not r.reused)
    echo(f"{destination}: {fetched} downloaded, {reused} already there and valid", err=True)
    return [r.problem for r in results if r.key is None]


def _name(path: str) -> str:
    name = basename(path.split("?", 1)[0])
    if not name or name.startswith("."):
        raise FleetgapError(f"the registry lists an unusable download path: {path!r}")
    return name
