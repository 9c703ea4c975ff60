"""The one exception type users see: its message is the single line the CLI prints; and
what any such line (or a log line) leaves out of a URL."""

from __future__ import annotations

import re

# The user-info of a URL: from after `scheme://` up to the authority's last `@` (a
# password may hold an unescaped `@`; URL parsers take the last one too).
_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/?#\s]*@")


class FleetgapError(Exception):
    """An error the user can cause and fix; the CLI prints `error: <message>` and exits 1."""


def without_userinfo(text: str) -> str:
    """`text` with the user-info (`user:password@`) of every URL in it removed: what is
    logged or printed never shows a secret given in a URL (a proxy, a source, an upstream)."""
    return _USERINFO.sub(r"\1", text) if "@" in text else text
