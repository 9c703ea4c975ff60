"""`fleetgap doctor`: check, inside the closed network, that stack version V has all it needs."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from fleetgap.cli.console import echo, markup_safe
from fleetgap.ops.doctor import DoctorOptions, Report, run_doctor

_FILE = click.Path(dir_okay=False, exists=True, path_type=Path)


def url_options(function):  # type: ignore[no-untyped-def]
    """The URLs doctor measures; `plan upgrade` takes the same."""
    for decorator in reversed(
        [
            click.option("--registry", help="Registry URL (xpack.fleet.registryUrl)."),
            click.option("--artifacts", help="Download source URL (agent.download.sourceURI)."),
            click.option("--key-url", help="Key URL (…/GPG-KEY-elastic-agent)."),
            click.option("--fleet-server", help="Fleet Server URL (https://HOST:8220)."),
            click.option(
                "--platform",
                "platforms",
                multiple=True,
                help="Agent platform, e.g. linux-x86_64 (repeatable; default: all of V).",
            ),
            click.option(
                "--package", "packages", multiple=True, help="Another package (repeatable)."
            ),
            click.option("--ca-cert", type=_FILE, help="The CA the certificates must chain to."),
            click.option(
                "--package-key",
                type=_FILE,
                help="Kibana's package key (gpgKeyPath) [default: the key at --key-url].",
            ),
            click.option("--timeout", default=10.0, show_default=True, help="Seconds per request."),
        ]
    ):
        function = decorator(function)
    return function


@click.command()
@click.option("--stack-version", required=True, help="The Elastic Stack version, e.g. 9.1.0.")
@url_options
@click.option(
    "--data",
    "data_dir",
    type=click.Path(file_okay=False, exists=True, path_type=Path),
    help="The registry's data directory (on its host): report the loaded bundles.",
)
@click.option("--deep", is_flag=True, help="Download the binaries and verify them as agents do.")
@click.option("--json", "as_json", is_flag=True, help="Print the checks as JSON.")
def doctor(
    stack_version: str, data_dir: Path | None, deep: bool, as_json: bool, **urls: object
) -> None:
    """Check registry, packages, binaries, keys, Fleet Server and TLS for a stack version.

    Exit code 0 when every check passes, 1 when anything needed is missing.
    """
    report = run_doctor(
        DoctorOptions(stack_version=stack_version, data_dir=data_dir, deep=deep, **urls)
    )  # type: ignore[arg-type]
    if as_json:
        echo(json.dumps(report.as_dict(), indent=2))
    else:
        print_report(report)
    sys.exit(0 if report.passed else 1)


def print_report(report: Report) -> None:
    from rich.console import Console
    from rich.table import Table

    title = f"fleetgap doctor — stack {markup_safe(report.version)}"
    table = Table(title=title, show_lines=True)
    for column in ("check", "status", "detail", "fix"):
        table.add_column(column, overflow="fold")
    style = {"ok": "[green]ok[/]", "fail": "[bold red]FAIL[/]", "skip": "[dim]skip[/]"}
    for result in report.results:
        # detail and fix quote what the registry, the packages and the keys said
        cells = (result.id, result.detail, result.fix or "")
        check, detail, fix = (markup_safe(cell) for cell in cells)
        table.add_row(check, style[result.status], detail, fix)
    console = Console(width=max(Console().width, 140))
    console.print(table)
    failed = sum(1 for r in report.results if r.failed)
    console.print(f"{failed} check(s) failed" if failed else "all checks passed")
