"""Serve DATA/downloads/ the way artifacts.elastic.co serves /downloads/ (spec: agent-artifacts §9).

GET and HEAD, single and multiple byte ranges (206) and If-Range through Starlette's
FileResponse, exact Content-Length, never a Content-Encoding, content types by extension, a
plain HTML listing for directories, and no way out of the root: a request path is checked
segment by segment after URL decoding and again after resolving symlinks. Work-in-progress
names (`store.is_temporary_name`) and symlinks leading out of the root are never listed or
served.

Mount with `Mount("/downloads", app=downloads_app(root))` so that
`agent.download.sourceURI: https://HOST:PORT/downloads/`.

Elastic Defend's files (`endpoint/`: the manifest zips, and every protection artifact a
manifest lists, wherever its relative_url puts it) get a strong ETag made from their
content, the SHA-256 in quotes: the same on every restart and every replica sharing the
data, and without the hyphen Endpoint does not accept (Elastic's guide rewrites nginx's ETag
for that reason). Endpoint re-downloads only when the ETag changes. Every file answers
`If-None-Match` with 304.
"""

from __future__ import annotations

import hashlib
import html
import os
import stat
import time
import urllib.parse
from collections import OrderedDict
from pathlib import Path

import anyio.to_thread
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import (
    FileResponse,
    HTMLResponse,
    PlainTextResponse,
    RedirectResponse,
    Response,
)
from starlette.routing import Route

from fleetgap.artifacts import defend
from fleetgap.errors import FleetgapError
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


CONTENT_ETAG_FOLDER = "endpoint/"  # Elastic Defend's manifests and protection artifacts
_ETAG_CACHE_ENTRIES = 4096
_etags: OrderedDict[tuple[str, int, int, int], str] = OrderedDict()


class _File(FileResponse):
    chunk_size = 1 << 20  # fewer, larger writes: loopback throughput
    max_ranges = 16  # more ranges: the Range header is ignored (a 200), as for /epr/

    def __init__(self, path: Path, *, media_type: str, stat_result: os.stat_result) -> None:
        super().__init__(path, media_type=media_type, stat_result=stat_result)
        self.stat = stat_result


_listed: dict[str, tuple[float, tuple, frozenset[str]]] = {}  # root → (scanned, stats, paths)
RESCAN_SECONDS = 1.0  # a new or changed Defend manifest is seen within this


def defend_paths(root: Path) -> frozenset[str]:
    """The paths (relative to `root`) every Defend manifest under `root` lists: a
    relative_url outside endpoint/ gets the content ETag too. The small manifest folder is
    scanned at most once a second per worker (not per request), and the manifests read
    again when one of them changed."""
    cached = _listed.get(str(root))
    now = time.monotonic()
    if cached is not None and now - cached[0] < RESCAN_SECONDS:
        return cached[2]
    folder = root / "endpoint" / "manifest"
    try:
        with os.scandir(folder) as scan:
            stats = tuple(
                sorted(
                    (e.name, e.inode(), e.stat().st_size, e.stat().st_mtime_ns)
                    for e in scan
                    if e.name.endswith(".zip") and not is_temporary_name(e.name)
                )
            )
    except OSError:
        stats = ()
    if cached is not None and cached[1] == stats:
        _listed[str(root)] = (now, stats, cached[2])
        return cached[2]
    paths: set[str] = set()
    for name, *_ in stats:
        try:
            manifest = defend.read_manifest_zip(folder / name)
        except FleetgapError:
            continue  # doctor and the status page report it
        paths.update(entry.data_path.removeprefix("downloads/") for entry in manifest.entries)
    _listed[str(root)] = (now, stats, frozenset(paths))
    return _listed[str(root)][2]


def content_etag(path: str | os.PathLike[str], info: os.stat_result) -> str:
    """`"<sha256 of the content>"`, remembered while the file's stat stays the same (at most
    4096 files: a bounded cache)."""
    key = (os.fspath(path), info.st_ino, info.st_size, info.st_mtime_ns)
    tag = _etags.get(key)
    if tag is None:
        digest = hashlib.sha256()
        with open(path, "rb") as handle:
            while chunk := handle.read(1 << 20):
                digest.update(chunk)
        tag = f'"{digest.hexdigest()}"'
        _etags[key] = tag
        while len(_etags) > _ETAG_CACHE_ENTRIES:
            _etags.popitem(last=False)
    return tag


def _not_modified(request: Request, response: FileResponse) -> Response | None:
    """304 when If-None-Match names the file's ETag (weak comparison, RFC 9110 §13.1.2)."""
    header = request.headers.get("if-none-match")
    etag = response.headers.get("etag")
    if header is None or etag is None:
        return None
    mine = etag.removeprefix("W/")
    tags = [tag.strip().removeprefix("W/") for tag in header[:8192].split(",")]
    if not any(tag == "*" or tag == mine for tag in tags):
        return None
    kept = {k: response.headers[k] for k in ("etag", "last-modified") if k in response.headers}
    return Response(status_code=304, headers=kept)


def downloads_app(root: Path) -> Starlette:
    """An ASGI app serving `root` (a DATA/downloads folder); mount it at /downloads."""
    root = Path(root)

    async def endpoint(request: Request):
        response = _serve(root, request)
        if isinstance(response, _File):
            relative = request.path_params.get("path", "").strip("/")
            if relative.startswith(CONTENT_ETAG_FOLDER) or relative in defend_paths(root):
                tag = await anyio.to_thread.run_sync(content_etag, response.path, response.stat)
                response.headers["etag"] = tag
            return _not_modified(request, response) or response
        return response

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
