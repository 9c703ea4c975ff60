"""The one exception type users see: its message is the single line the CLI prints."""


class FleetgapError(Exception):
    """An error the user can cause and fix; the CLI prints `error: <message>` and exits 1."""
