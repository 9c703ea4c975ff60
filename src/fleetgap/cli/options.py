"""Options several commands share, defined once."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import click


def data_option(help: str, *, required: bool = False, exists: bool = False):
    """`--data DIR` (env FLEETGAP_DATA): the fleetgap data directory."""
    return click.option(
        "--data",
        "data_dir",
        required=required,
        envvar="FLEETGAP_DATA",
        type=click.Path(file_okay=False, exists=exists, path_type=Path),
        help=help,
    )


def key_files_option(help: str):
    """`--key FILE`, repeatable: armored public keys to trust, tried in order."""
    return click.option(
        "--key",
        "key_files",
        multiple=True,
        type=click.Path(dir_okay=False, exists=True, path_type=Path),
        help=help,
    )


def retries_option(command):
    """`--retries N` (env FLEETGAP_RETRIES): retries of a failed request, waits doubling from
    1 s up to 10 s each."""
    from fleetgap.net import DEFAULT_RETRIES

    return click.option(
        "--retries",
        "retries",
        default=DEFAULT_RETRIES,
        show_default=True,
        envvar="FLEETGAP_RETRIES",
        type=click.IntRange(0, 20),
        help="Retries of a failed request (waits of 1, 2, 4, 8, then 10 s; default 25 s in all).",
    )(command)


@contextlib.contextmanager
def progress_display(label: str, as_json: bool) -> Iterator:
    """Rich bars on a terminal (none with --json); elsewhere (systemd, CI, `| tee`) a plain
    progress line every few seconds on stderr."""
    from fleetgap.artifacts.progress import PlainProgress, RichProgress

    if not sys.stderr.isatty():
        with PlainProgress(label) as plain:
            yield plain
    elif as_json:
        yield None
    else:
        with RichProgress() as bars:
            yield bars


def strict_option(command):
    """`--strict`: a query or pinned package that matches nothing is an error."""
    return click.option(
        "--strict",
        is_flag=True,
        help="A query or pinned package that matches nothing is an error, not a warning.",
    )(command)


def report_unmatched(strict: bool) -> Callable[[list[str]], None]:
    """What `resolve_packages` calls with the selection entries that match nothing."""
    from fleetgap.errors import FleetgapError

    def report(lines: list[str]) -> None:
        if strict and lines:
            raise FleetgapError("; ".join(lines) + " (--strict)")
        for line in lines:
            click.echo(f"warning: {line}", err=True)

    return report


@contextlib.contextmanager
def interrupted_note(kept: str) -> Iterator[None]:
    """Ctrl-C: say what was kept and that running the same command again resumes."""
    try:
        yield
    except KeyboardInterrupt:
        click.echo(f"\ninterrupted: {kept}; run the same command again to resume", err=True)
        sys.exit(130)


def passphrase_option(command):
    """`--passphrase-file FILE`: the signing key's passphrase (its first line); without it,
    the environment variable FLEETGAP_KEY_PASSPHRASE. Never on the command line, where
    other users see it."""
    from fleetgap.pgp.keys import PASSPHRASE_ENV

    return click.option(
        "--passphrase-file",
        type=click.Path(dir_okay=False, exists=True, path_type=Path),
        help=f"File whose first line is the signing key's passphrase (else env {PASSPHRASE_ENV}).",
    )(command)


def read_passphrase(passphrase_file: Path | None) -> str | None:
    """The passphrase from --passphrase-file, else from the environment, else None."""
    import os

    from fleetgap.errors import FleetgapError
    from fleetgap.pgp.keys import PASSPHRASE_ENV

    if passphrase_file is None:
        return os.environ.get(PASSPHRASE_ENV) or None
    try:
        text = Path(passphrase_file).read_text("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise FleetgapError(f"cannot read --passphrase-file {passphrase_file}: {exc}") from None
    passphrase = text.splitlines()[0] if text else ""
    if not passphrase:
        raise FleetgapError(f"--passphrase-file {passphrase_file}: its first line is empty")
    return passphrase
