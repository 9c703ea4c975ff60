"""DATA/kit/ as a pip index (PEP 503 "simple"), so closed-side hosts install fleetgap with
`pip install --index-url https://REGISTRY/fleetgap/simple/ fleetgap`.

    /fleetgap/simple/               one link per project (normalized name)
    /fleetgap/simple/<project>/     one link per wheel, with #sha256=<hex>
    /fleetgap/files/<wheel>         the wheel itself (Range and ETag by Starlette)

The wheels arrived by `bundle load`, checked against the signed manifest; the SHA-256 in the
links is computed once per file (cached by name, size and mtime) so pip checks every
download against it.
"""

from __future__ import annotations

import hashlib
import html
import os
import re
import stat
from pathlib import Path

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, PlainTextResponse, RedirectResponse
from starlette.routing import Route

from fleetgap.bundle.verify import is_wheel_path

PREFIX = "/fleetgap"
_MAX_CACHED = 4096  # digests kept; a kit holds a few dozen wheels per platform and Python


def kit_index_app(root: Path) -> Starlette:
    """Mount at PREFIX: `Mount("/fleetgap", app=kit_index_app(DATA / "kit"))`."""
    index = _KitIndex(Path(root))
    return Starlette(
        routes=[
            Route("/simple/", index.projects, methods=["GET", "HEAD"]),
            Route("/simple/{project}/", index.project, methods=["GET", "HEAD"]),
            Route("/simple/{project}", index.slash, methods=["GET", "HEAD"]),
            Route("/files/{name}", index.file, methods=["GET", "HEAD"]),
        ]
    )


def normalize(name: str) -> str:
    """PEP 503 normalized project name."""
    return re.sub(r"[-_.]+", "-", name).lower()


class _KitIndex:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.digests: dict[tuple[str, int, int], str] = {}

    async def projects(self, request: Request) -> HTMLResponse:
        names = sorted({normalize(wheel.split("-", 1)[0]) for wheel in self._wheels()})
        links = "".join(f'<a href="{html.escape(n)}/">{html.escape(n)}</a>\n' for n in names)
        return _page("fleetgap kit", links)

    async def project(self, request: Request):
        asked = request.path_params["project"]
        wanted = normalize(asked)
        if asked != wanted:
            return RedirectResponse(f"{PREFIX}/simple/{wanted}/", status_code=301)
        wheels = [w for w in self._wheels() if normalize(w.split("-", 1)[0]) == wanted]
        if not wheels:
            return PlainTextResponse("404 page not found\n", status_code=404)
        links = []
        for wheel in wheels:
            digest = await run_in_threadpool(self._sha256, wheel)
            if digest is None:
                continue
            href = html.escape(f"../../files/{wheel}#sha256={digest}")
            links.append(f'<a href="{href}">{html.escape(wheel)}</a>\n')
        return _page(f"Links for {wanted}", "".join(links))

    async def slash(self, request: Request) -> RedirectResponse:
        return RedirectResponse(f"{request.url.path}/", status_code=301)

    async def file(self, request: Request):
        name = request.path_params["name"]
        if not self._is_wheel(name):
            return PlainTextResponse("404 page not found\n", status_code=404)
        return FileResponse(self.root / name, media_type="application/octet-stream")

    def _wheels(self) -> list[str]:
        """The wheel files directly in the kit folder (no links out, no work in progress)."""
        try:
            entries = sorted(p for p in self.root.iterdir() if is_wheel_path(f"kit/{p.name}"))
        except OSError:
            return []
        return [p.name for p in entries if p.is_file() and not p.is_symlink()]

    def _is_wheel(self, name: str) -> bool:
        """`name` is one of `_wheels()`, with one lstat instead of a listing."""
        if "/" in name or not is_wheel_path(f"kit/{name}"):
            return False
        try:
            return stat.S_ISREG(os.lstat(self.root / name).st_mode)
        except OSError:
            return False

    def _sha256(self, name: str) -> str | None:
        path = self.root / name
        try:
            info = path.stat()
            key = (name, info.st_size, info.st_mtime_ns)
            if key not in self.digests:
                with open(path, "rb") as handle:
                    digest = hashlib.file_digest(handle, "sha256").hexdigest()
                if len(self.digests) >= _MAX_CACHED:
                    self.digests.clear()
                self.digests[key] = digest
        except OSError:
            return None
        return self.digests[key]


def _page(title: str, body: str) -> HTMLResponse:
    text = (
        '<!DOCTYPE html>\n<html><head><meta name="pypi:repository-version" content="1.0">'
        f"<title>{html.escape(title)}</title></head><body>\n{body}</body></html>\n"
    )
    return HTMLResponse(text)
