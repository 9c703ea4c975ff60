"""What the commands print: text from outside (a manifest, a package, a remote answer, an
error about any of them) is shown, never obeyed by the terminal.

`echo` is click.echo for such text: control characters come out escaped (`\\x1b`), so an
escape sequence cannot retitle, recolour or rewrite the terminal, and the user-info of any
URL is left out, so a password given in a URL never reaches a screen or a pasted log.
`markup_safe` is the same for a cell of a rich table, with rich's markup escaped.
"""

from __future__ import annotations

import click
from rich.markup import escape

from fleetgap.errors import printable, without_userinfo


def shown(text: str, *, one_line: bool = False) -> str:
    """`text` as it may reach a terminal (see the module's docstring)."""
    return without_userinfo(printable(text, one_line=one_line))


def echo(text: str = "", *, err: bool = False, nl: bool = True) -> None:
    """click.echo of text that may hold outside data."""
    click.echo(shown(text), err=err, nl=nl)


def markup_safe(text: str) -> str:
    """A value for a rich table cell or `Console.print`: shown, and with its markup escaped."""
    return escape(shown(text, one_line=True))
