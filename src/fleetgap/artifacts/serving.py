"""Serve DATA/downloads/ the way artifacts.elastic.co serves /downloads/ (spec: agent-artifacts §9).

GET and HEAD, single and multiple byte ranges (206) and If-Range through Starlette's
FileResponse, exact Content-Length, never a Content-Encoding, content types by extension, a
plain HTML listing for directories, and no way out of the root: a request path is checked
segment by segment after URL decoding and again after resolving symlinks. Work-in-progress
names (`store.is_temporary_name`) and symlinks leading out of the root are never listed or
served.

Mount with `Mount("/downloads", app=downloads_app(root))` so that
`agent.download.sourceURI: https://HOST:PORT/downloads/`.
"""

from __future__ import annotations

import html
import os
import stat
import urllib.parse
from pathlib import Path

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, PlainTextResponse, RedirectResponse
from starlette.routing import Route

from fleetgap.store import inside, is_temporary_name

# Longest suffix first; everything else is application/octet-stream.
CONTENT_TYPES: tuple[tuple[str, str], ...] = (
    (".tar.gz", "application/gzip"),
    (".tgz", "application/gzip"),
    (".gz", "application/gzip"),
    (".zip", "application/zip"),
    (".deb", "application/vnd.debian.binary-package"),
    (".rpm", "application/x-rpm"),
    (".msi", "application/x-msi"),
    (".sha512", "text/plain; charset=utf-8"),
    (".asc", "application/pgp-signature"),
    (".sig", "application/pgp-signature"),
    (".json", "application/json"),
    (".txt", "text/plain; charset=utf-8"),
)


class _File(FileResponse):
    chunk_size = 1 << 20  # fewer, larger writes: loopback throughput
    max_ranges = 16  # more ranges: the Range header is ignored (a 200), as for /epr/


def downloads_app(root: Path) -> Starlette:
    """An ASGI app serving `root` (a DATA/downloads folder); mount it at /downloads."""
    root = Path(root)

    async def endpoint(request: Request):
        return _serve(root, request)

    return Starlette(
        routes=[
            Route("/", endpoint, methods=["GET", "HEAD"]),
            Route("/{path:path}", endpoint, methods=["GET", "HEAD"]),
        ]
    )


def content_type(name: str) -> str:
    lowered = name.lower()
    for suffix, media_type in CONTENT_TYPES:
        if lowered.endswith(suffix):
            return media_type
    return "application/octet-stream"


def _serve(root: Path, request: Request):
    relative = request.path_params.get("path", "")
    target = _resolve(root, relative)
    if target is None:
        return PlainTextResponse("404 page not found\n", status_code=404)
    try:
        info = target.stat()
    except OSError:
        return PlainTextResponse("404 page not found\n", status_code=404)
    if stat.S_ISDIR(info.st_mode):
        if relative and not relative.endswith("/"):
            return RedirectResponse(request.url.path + "/", status_code=301)
        return _listing(root, target, request.url.path)
    if not stat.S_ISREG(info.st_mode) or relative.endswith("/"):
        return PlainTextResponse("404 page not found\n", status_code=404)
    return _File(target, media_type=content_type(target.name), stat_result=info)


def _resolve(root: Path, relative: str) -> Path | None:
    """The file or folder for a decoded request path, or None if it leaves the root or is hidden."""
    segments = [s for s in relative.split("/") if s]
    for segment in segments:
        if (
            segment in (".", "..")
            or is_temporary_name(segment)
            or "\\" in segment
            or "\x00" in segment
            or "%" in segment  # a second round of encoding: never a real artifact name
        ):
            return None
    candidate = root.joinpath(*segments)
    try:
        real_root = root.resolve(strict=True)
        real = candidate.resolve(strict=True)
    except (OSError, RuntimeError):
        return None
    if real != real_root and not real.is_relative_to(real_root):
        return None
    return candidate


def _listing(root: Path, folder: Path, url_path: str) -> HTMLResponse:
    entries = []
    try:
        with os.scandir(folder) as scan:
            for entry in scan:
                if is_temporary_name(entry.name) or not inside(root, entry.path):
                    continue
                try:
                    is_dir = entry.is_dir()
                    size = None if is_dir else entry.stat().st_size
                except OSError:
                    continue
                entries.append((not is_dir, entry.name, size))
    except OSError:
        return HTMLResponse("404 page not found\n", status_code=404)
    entries.sort()
    title = html.escape(urllib.parse.unquote(url_path))
    rows = []
    if url_path.rstrip("/").count("/") > 1:
        rows.append('<a href="../">../</a>')
    for is_file, name, size in entries:
        shown = name if is_file else name + "/"
        href = urllib.parse.quote(shown, safe="/+")
        text = f'<a href="{href}">{html.escape(shown)}</a>'
        rows.append(f"{text}  {size}" if is_file else text)
    body = (
        '<!DOCTYPE html>\n<html><head><meta charset="utf-8">'
        f"<title>Index of {title}</title></head>\n<body><h1>Index of {title}</h1>\n<pre>\n"
        + "\n".join(rows)
        + "\n</pre></body></html>\n"
    )
    return HTMLResponse(body)
