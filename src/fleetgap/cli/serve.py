"""`fleetgap serve`: the package registry, with every flag of Elastic's Go registry.

Options come from `fleetgap.config.FLAGS` (Go names) and `FLEETGAP_FLAGS`. Go's flag syntax
is accepted too: `-address :8080` and `-dry-run=false` mean `--address :8080` and
`--dry-run=false`, so a command line written for Elastic's binary works unchanged.
"""

from __future__ import annotations

import os
import sys

import click

from fleetgap import __version__
from fleetgap.config import ALL_FLAGS, COMPAT_VERSION, Flag, load_settings, version_requested

_LONG_NAMES = frozenset(flag.name for flag in ALL_FLAGS)


class _GoFlagsCommand(click.Command):
    """Rewrites Go's single-dash long flags (`-address`) to click's `--address`."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        return super().parse_args(ctx, normalise_go_flags(args))


def normalise_go_flags(args: list[str]) -> list[str]:
    out: list[str] = []
    for position, arg in enumerate(args):
        if arg == "--":
            return out + args[position:]
        if arg[:1] == "-" and arg[1:2] != "-" and arg[1:].partition("=")[0] in _LONG_NAMES:
            arg = "-" + arg
        out.append(arg)
    return out


def _option(flag: Flag):  # type: ignore[no-untyped-def]
    env = f"(env {flag.env_name})"
    if flag.boolean:
        return click.option(
            f"--{flag.name}",
            flag.key,
            default=None,
            is_flag=False,
            flag_value="true",
            metavar="[=BOOL]",
            help=f"{flag.help} {env}",
        )
    return click.option(
        f"--{flag.name}",
        flag.key,
        default=None,
        multiple=flag.multiple,
        metavar="PATH" if flag.multiple else "VALUE",
        help=f"{flag.help} {env}",
    )


def _with_flags(function):  # type: ignore[no-untyped-def]
    for flag in reversed(ALL_FLAGS):
        function = _option(flag)(function)
    return function


@click.command(cls=_GoFlagsCommand, context_settings={"max_content_width": 100})
@_with_flags
def serve(**flags: object) -> None:
    """Serve the package registry (a drop-in for Elastic's package-registry).

    Settings come from config.yml (package_paths, cache_time.*), then EPR_* environment
    variables, then these flags. With no config.yml and no --data, the sample packages
    bundled with fleetgap are served.
    """
    given = {key: value for key, value in flags.items() if value is not None}
    if version_requested(given, os.environ):
        click.echo(f"Elastic Package Registry version {COMPAT_VERSION} (fleetgap {__version__})")
        return
    settings = load_settings(given, os.environ)

    from fleetgap.serving import server

    sys.exit(server.run(settings))
