"""What the commands print: text from outside (a manifest, a package, a remote answer, an
error about any of them) is shown, never obeyed by the terminal.

`echo` is click.echo for such text: control characters come out escaped (`\\x1b`), so an
escape sequence cannot retitle, recolour or rewrite the terminal, and the user-info of any
URL is left out, so a password given in a URL never reaches a screen or a pasted log.
`markup_safe` is the same for a cell of a rich table, with rich's markup escaped.
"""

from __future__ import annotations

import re

import click
from rich.markup import escape

from fleetgap.errors import without_userinfo

# C0 controls but tab and newline, DEL, C1 controls, and the bidirectional overrides and
# isolates that reorder what a line seems to say (CVE-2021-42574).
_UNSAFE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")
# One line of a table cell or a value: newlines and tabs are escaped too.
_UNSAFE_IN_LINE = re.compile(_UNSAFE.pattern[:-1] + "\t\n]")


def shown(text: str, *, one_line: bool = False) -> str:
    """`text` as it may reach a terminal (see the module's docstring)."""
    pattern = _UNSAFE_IN_LINE if one_line else _UNSAFE
    return without_userinfo(pattern.sub(_escape, text))


def echo(text: str = "", *, err: bool = False, nl: bool = True) -> None:
    """click.echo of text that may hold outside data."""
    click.echo(shown(text), err=err, nl=nl)


def markup_safe(text: str) -> str:
    """A value for a rich table cell or `Console.print`: shown, and with its markup escaped."""
    return escape(shown(text, one_line=True))


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"
