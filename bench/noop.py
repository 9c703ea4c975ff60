"""The no-op Granian app of bench/registry.py: the same bytes as fleetgap, no application code.

    granian --interface asgi --no-ws --workers N --working-dir bench noop:app

Serves what nginx serves in bench/registry.py, at the same paths:
  * `/static/<file>` — the JSON bodies captured from fleetgap, read into memory at start
    and sent as bytes (as fleetgap's fast path sends a known answer);
  * `/epr/<name>/<file>.zip` and `/downloads/<path>` — files of the data tree, stat'ed and
    handed to Granian with `http.response.pathsend` (as fleetgap sends files).
Anything else is 404. The directories come from FLEETGAP_NOOP_STATIC and FLEETGAP_NOOP_DATA.
"""

from __future__ import annotations

import os
from pathlib import Path

STATIC_ENV = "FLEETGAP_NOOP_STATIC"
DATA_ENV = "FLEETGAP_NOOP_DATA"

_JSON = b"application/json; charset=utf-8"
_NOT_FOUND = [(b"content-length", b"0")]


def _bodies(static: str | None) -> dict[str, bytes]:
    out: dict[str, bytes] = {}
    if not static:
        return out
    for path in Path(static).rglob("*"):
        if path.is_file():
            out[f"/static/{path.relative_to(static).as_posix()}"] = path.read_bytes()
    return out


BODIES = _bodies(os.environ.get(STATIC_ENV))
DATA = os.environ.get(DATA_ENV, "")


def _file(path: str) -> str | None:
    if path.startswith("/epr/") and path.endswith(".zip"):
        return f"{DATA}/packages/{path.rsplit('/', 1)[1]}"
    if path.startswith("/downloads/") and ".." not in path:
        return f"{DATA}{path}"
    return None


async def app(scope, receive, send):  # type: ignore[no-untyped-def]
    if scope["type"] != "http":
        return
    path = scope["path"]
    body = BODIES.get(path)
    if body is not None:
        headers = [(b"content-type", _JSON), (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})
        return
    target = _file(path)
    try:
        size = os.stat(target).st_size if target else -1
    except OSError:
        size = -1
    if target is None or size < 0:
        await send({"type": "http.response.start", "status": 404, "headers": _NOT_FOUND})
        await send({"type": "http.response.body", "body": b""})
        return
    headers = [(b"content-length", str(size).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.pathsend", "path": target})
