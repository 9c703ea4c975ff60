"""The one exception type users see: its message is the single line the CLI prints; and
how any such line (or a log line) shows outside text: control characters escaped, no
password of a URL."""

from __future__ import annotations

import re

# The user-info of a URL: from after `scheme://` up to the authority's last `@` (a
# password may hold an unescaped `@`; URL parsers take the last one too).
_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/?#\s]*@")
# C0 controls but tab and newline, DEL, C1 controls, and the bidirectional overrides and
# isolates that reorder what a line seems to say (CVE-2021-42574).
_UNSAFE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")
# The same within one line or value: newlines and tabs too.
_UNSAFE_IN_LINE = re.compile(_UNSAFE.pattern[:-1] + "\t\n]")


class FleetgapError(Exception):
    """An error the user can cause and fix; the CLI prints `error: <message>` and exits 1."""


def without_userinfo(text: str) -> str:
    """`text` with the user-info (`user:password@`) of every URL in it removed: what is
    logged or printed never shows a secret given in a URL (a proxy, a source, an upstream)."""
    return _USERINFO.sub(r"\1", text) if "@" in text else text


def printable(text: str, *, one_line: bool = False) -> str:
    """`text` with its control characters escaped (`\\x1b`, `\\u202e`): what a terminal
    shows, never obeys (a title, a clear screen, a line that reads backwards)."""
    pattern = _UNSAFE_IN_LINE if one_line else _UNSAFE
    return pattern.sub(_escape, text)


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"
