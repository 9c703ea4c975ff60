"""The `fleetgap` command: a click group; each sub-module adds one command or group.

Commands only parse arguments and call the jobs. A `FleetgapError`, or a file system
error (`OSError`), becomes one line on stderr and exit code 1, never a traceback.
"""

from __future__ import annotations

import os
import sys

import click

from fleetgap import __version__
from fleetgap.cli.console import shown
from fleetgap.errors import FleetgapError


class _Group(click.Group):
    def invoke(self, ctx: click.Context):  # type: ignore[override]
        try:
            return super().invoke(ctx)
        except FleetgapError as exc:
            click.echo(f"error: {shown(str(exc))}", err=True)
            sys.exit(1)
        except BrokenPipeError:
            # the reader left (`… | head`): stop quietly, as tools killed by SIGPIPE do; the
            # rest of stdout goes nowhere so that Python's own flush at exit cannot complain
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            sys.exit(141)
        except OSError as exc:  # a file system refusal (permissions, a full disk, …)
            where = f": {exc.filename}" if exc.filename else ""
            click.echo(shown(f"error: {exc.strerror or exc}{where}"), err=True)
            sys.exit(1)


@click.group(cls=_Group)
@click.version_option(__version__, prog_name="fleetgap")
def main() -> None:
    """Elastic Fleet for air-gapped networks."""


def _register() -> None:
    from fleetgap.cli import serve

    main.add_command(serve.serve)

    from fleetgap.cli import artifacts

    main.add_command(artifacts.artifacts)

    from fleetgap.cli import agent, keys, packages, verify

    main.add_command(keys.keys)
    main.add_command(verify.verify)
    main.add_command(agent.agent)
    main.add_command(packages.packages)

    from fleetgap.cli import certs, doctor, plan, snippets

    main.add_command(doctor.doctor)
    main.add_command(plan.plan)
    main.add_command(snippets.config)
    main.add_command(certs.certs)

    from fleetgap.cli import bundle, distribution

    main.add_command(bundle.bundle)
    main.add_command(distribution.distribution)

    from fleetgap.cli import kit

    main.add_command(kit.kit)


_register()
