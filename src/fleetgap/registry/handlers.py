"""One handler per route of the Go registry (spec: epr-api §3).

Handlers are lookups: package documents are rendered at index time, and /search and
/categories answers are kept per parsed query (within a byte budget) until the index is
replaced.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import os
import threading
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from importlib import resources
from typing import TYPE_CHECKING, BinaryIO, TypeVar

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from fleetgap.config import Settings
from fleetgap.packages import search
from fleetgap.packages.categories import categories_document, count_categories, merge_counts
from fleetgap.packages.fs import DirectoryFS, PackageFSError, ZipFS
from fleetgap.packages.gojson import dumps
from fleetgap.packages.index import PackageIndex
from fleetgap.packages.model import Package
from fleetgap.packages.search import Filter
from fleetgap.registry.archive import zip_directory
from fleetgap.registry.bounded import BoundedCache
from fleetgap.registry.content import Content, http_error, serve_content
from fleetgap.registry.mimetypes import content_type as type_for_name
from fleetgap.registry.proxy import Upstream, UpstreamError
from fleetgap.registry.query import QueryError, categories_filter, search_filter
from fleetgap.registry.responses import (
    bad_request,
    cache_headers,
    internal_error,
    json_response,
    not_found,
    raw_response,
    redirect,
)
from fleetgap.registry.routing import parse_query
from fleetgap.semver import SemverError, Version
from fleetgap.store import resolved_under

if TYPE_CHECKING:  # app.py imports this module
    from fleetgap.registry.holder import IndexHolder

log = logging.getLogger("fleetgap.registry")
Q = TypeVar("Q")

# The version of Elastic's registry whose behaviour fleetgap reproduces (its `/` answer).
COMPAT_VERSION = "1.40.1"
# The most the kept /search and /categories bodies may add up to, per worker: a full
# `/search?all=true` of a large registry is about 13 MB.
ANSWER_BUDGET = 64 << 20
ENTRY_OVERHEAD = 512  # bytes: the objects of a key and the cache's own bookkeeping
MAX_OPEN_ZIPS = 64  # file descriptors: a server often runs with a limit of 1024 or less


def _answer_size(key: tuple[str, object], body: bytes) -> int:
    """The body, and the text the parsed query holds (a package name may be 60 KB long)."""
    return len(body) + ENTRY_OVERHEAD + _text_size(key)


def _text_size(value: object) -> int:
    if isinstance(value, str | bytes):
        return len(value)
    if isinstance(value, tuple | list):
        return sum(_text_size(item) for item in value) + 8 * len(value)
    if dataclasses.is_dataclass(value):
        return sum(_text_size(getattr(value, f.name)) for f in dataclasses.fields(value))
    return 8


@dataclass
class Context:
    settings: Settings
    holder: IndexHolder
    upstream: Upstream | None
    _cached_for: PackageIndex | None = None
    # /search and /categories bodies by (route, parsed query)
    answers: BoundedCache[tuple[str, object], bytes] = field(
        default_factory=lambda: BoundedCache(ANSWER_BUDGET, _answer_size)
    )
    # the zip packages opened to serve their files, most recently used last
    _zips: OrderedDict[str, ZipFS] = field(default_factory=OrderedDict)
    _zips_lock: threading.RLock = field(default_factory=threading.RLock)
    index_body: bytes = b""
    favicon: bytes = b""
    # the package paths resolved, once per index (real_path runs per package file)
    _real_roots: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        self.index_body = dumps(
            {"service.name": self.settings.service_name, "service.version": COMPAT_VERSION}
        )
        self.favicon = _favicon(self.settings)

    @property
    def index(self) -> PackageIndex:
        index = self.holder.index
        if index is not self._cached_for:
            self._cached_for = index
            self._real_roots = ()  # resolved again on first use
            self.answers.clear()
            with self._zips_lock:
                old, self._zips = self._zips, OrderedDict()
            for archive in old.values():
                archive.close()
        return index

    def real_path(self, path: str | os.PathLike[str]) -> str | None:
        """`path` with symlinks resolved, if that lies inside a package path; else None (a
        symlink leading out of DATA is never followed)."""
        real = os.path.realpath(path)
        if not self._real_roots:
            self._real_roots = tuple(os.path.realpath(p) for p in self.settings.package_paths)
        if not any(resolved_under(root, real) for root in self._real_roots):
            return None
        return real

    def zip_fs(self, package: Package) -> ZipFS:
        """The package's zip, open; at most MAX_OPEN_ZIPS stay open. Closing one does not
        cut a member being sent: zipfile closes the file when its last reader is done."""
        key = str(package.base_path)
        with self._zips_lock:
            archive = self._zips.get(key)
            if archive is not None:
                self._zips.move_to_end(key)
                return archive
        archive = ZipFS(package.base_path)  # outside the lock: it reads the directory
        closing = []
        with self._zips_lock:
            if key in self._zips:  # opened by another thread meanwhile
                closing.append(archive)
                archive = self._zips[key]
            self._zips[key] = archive
            while len(self._zips) > MAX_OPEN_ZIPS:
                closing.append(self._zips.popitem(last=False)[1])
        for old in closing:
            old.close()
        return archive

    def open_zip_member(self, package: Package, name: str) -> BinaryIO:
        """A member's stream; the lock keeps its archive from being closed while it opens
        (afterwards the stream holds the file open itself)."""
        with self._zips_lock:
            return self.zip_fs(package).open(name)


Handler = Callable[[Context, Request, dict[str, str]], Awaitable[Response]]


def _favicon(settings: Settings) -> bytes:
    if settings.favicon is not None:
        return settings.favicon.read_bytes()
    return resources.files("fleetgap.registry").joinpath("favicon.ico").read_bytes()


# --- service routes -------------------------------------------------------------------


async def index(ctx: Context, request: Request, _: dict[str, str]) -> Response:
    return json_response(ctx.index_body, ctx.settings.cache_time.index, request.method)


async def health(ctx: Context, request: Request, _: dict[str, str]) -> Response:
    return raw_response(200, b"", [], request.method)


async def favicon(ctx: Context, request: Request, _: dict[str, str]) -> Response:
    headers = [*cache_headers(ctx.settings.cache_time.catch_all), ("content-type", "image/x-icon")]
    return raw_response(200, ctx.favicon, headers, request.method)


# --- /search and /categories ----------------------------------------------------------


async def search_route(ctx: Context, request: Request, _: dict[str, str]) -> Response:
    def parse() -> Filter:
        return search_filter(_query(request), ctx.settings.allow_unknown_query_parameters)

    async def compute(index: PackageIndex, query: Filter) -> bytes:
        matches = search.select(index.indexers, query)
        if ctx.upstream is not None:
            remote = await ctx.upstream.search(_path_and_query(request))
            matches = search.join(matches, remote, query.all_versions)
        return render_search(matches)

    return await _answer(ctx, request, "search", ctx.settings.cache_time.search, parse, compute)


def render_search(matches: list[search.Match]) -> bytes:
    if not matches:
        return b"[]"  # spec §3.4: no trailing newline for the empty answer
    return b"[\n" + b",\n".join(m.search_item() for m in matches) + b"\n]\n"


async def categories_route(ctx: Context, request: Request, _: dict[str, str]) -> Response:
    def parse() -> tuple[Filter, bool]:
        return categories_filter(_query(request), ctx.settings.allow_unknown_query_parameters)

    async def compute(index: PackageIndex, parsed: tuple[Filter, bool]) -> bytes:
        query, with_templates = parsed
        counts = count_categories(search.select(index.indexers, query), with_templates)
        if ctx.upstream is not None:
            merge_counts(counts, await ctx.upstream.categories(_path_and_query(request)))
        return dumps(categories_document(counts))

    seconds = ctx.settings.cache_time.categories
    return await _answer(ctx, request, "categories", seconds, parse, compute)


async def _answer(
    ctx: Context,
    request: Request,
    route: str,
    seconds: float,
    parse: Callable[[], Q],
    compute: Callable[[PackageIndex, Q], Awaitable[bytes]],
) -> Response:
    """A /search or /categories body, computed once per parsed query and index: requests
    that differ only in ways the query does not read (order, repeats, build metadata of a
    version...) share one kept answer.

    Proxy mode asks the upstream every time, so nothing is kept there.
    """
    index = ctx.index  # first: a new index empties the kept answers
    try:
        query = parse()
    except QueryError as exc:
        return bad_request(str(exc), request.method)
    key = (route, query)
    body = None if ctx.upstream else ctx.answers.get(key)
    if body is None:
        try:
            body = await compute(index, query)
        except UpstreamError as exc:
            log.error("proxy mode: %s failed: %s", route, exc)
            return internal_error(request.method)
        if ctx.upstream is None:
            ctx.answers.put(key, body)
    return json_response(body, seconds, request.method)


def _query(request: Request) -> dict[str, list[str]]:
    return parse_query(request.scope.get("query_string", b"").decode("latin-1"))


def _path_and_query(request: Request) -> str:
    query = request.scope.get("query_string", b"").decode("latin-1")
    return request.scope["path"] + (f"?{query}" if query else "")


# --- one package ----------------------------------------------------------------------


def _strict(version: str) -> bool:
    try:
        Version.parse_strict(version)
    except SemverError:
        return False
    return True


async def package_index(ctx: Context, request: Request, params: dict[str, str]) -> Response:
    name, version = params["name"], params["version"]
    if not _strict(version):
        return bad_request("invalid package version", request.method)
    package = ctx.index.get(name, version)
    seconds = ctx.settings.cache_time.index
    if package is not None:
        return json_response(package.index_json, seconds, request.method)
    if ctx.upstream is not None:
        try:
            body = await ctx.upstream.package(name, version)
        except UpstreamError as exc:
            log.error("proxy mode: package failed: %s", exc)
            return internal_error(request.method)
        if body is not None:
            return json_response(body, seconds, request.method)
    return not_found("package revision not found", request.method)


async def artifact(ctx: Context, request: Request, params: dict[str, str]) -> Response:
    return await _package_file(ctx, request, params, ".zip", "artifact not found")


async def signature(ctx: Context, request: Request, params: dict[str, str]) -> Response:
    return await _package_file(ctx, request, params, ".zip.sig", "signature file not found")


async def _package_file(
    ctx: Context, request: Request, params: dict[str, str], suffix: str, missing: str
) -> Response:
    name, version = params["name"], params["version"]
    method = request.method
    if not _strict(version):
        return bad_request("invalid package version", method)
    package = ctx.index.get(name, version)
    headers = cache_headers(ctx.settings.cache_time.catch_all)
    if package is None:
        remote = await _remote_file(
            ctx, request, name, version, f"/epr/package/{name}-{version}{suffix}"
        )
        return remote or not_found(missing, method)
    path = ctx.real_path(str(package.base_path) + (".sig" if suffix.endswith(".sig") else ""))
    if path is None:
        log.error("%s-%s%s leads outside the package paths: not served", name, version, suffix)
        return not_found(missing, method)
    if suffix == ".zip" and not package.is_zip:
        if not os.path.isdir(path):
            log.error("stat package path failed: %s", path)
            return internal_error(method, headers)
        headers.append(("content-type", "application/zip"))
        if method == "HEAD":  # the length is not known before the zip is made
            response = Response(status_code=200)
        else:
            body = zip_directory(DirectoryFS(package.base_path), f"{name}-{version}")
            response = StreamingResponse(body, status_code=200)
        response.raw_headers = [(k.encode(), v.encode()) for k, v in headers]
        return response
    try:
        # A stat is fast enough to do here; a hop to a thread costs more under load.
        content = Content.from_path(path)
    except OSError as exc:
        log.error("stat package path failed: %s: %s", path, exc.strerror)
        return internal_error(method, headers)
    return await serve_content(request, content, headers=headers)


async def static(ctx: Context, request: Request, params: dict[str, str]) -> Response:
    name, version, file = params["name"], params["version"], params["file"]
    method = request.method
    if not _strict(version):
        return bad_request("invalid package version", method)
    package = ctx.index.get(name, version)
    if package is None:
        remote = await _remote_file(
            ctx, request, name, version, f"/package/{name}/{version}/{file}"
        )
        return remote or not_found("package revision not found", method)
    headers = cache_headers(ctx.settings.cache_time.catch_all)
    try:
        content = _static_content(ctx, package, file)  # stats and lookups only
    except (OSError, PackageFSError) as exc:
        log.error("serving %s from %s failed: %s", file, package.base_path, exc)
        return internal_error(method, headers)
    if content is None:
        # spec §3.9: the public cache headers set earlier stay on this 404
        return http_error("resource not found", 404, headers=headers, method=method)
    if _may_run_script(file):
        headers.append(("content-security-policy", PACKAGE_DOCUMENT_POLICY))
    return await serve_content(request, content, headers=headers)


# Beyond Go: a package's SVG or HTML file opened on the registry's origin may run no script.
PACKAGE_DOCUMENT_POLICY = "sandbox; default-src 'none'; style-src 'unsafe-inline'; img-src data:"
_ACTIVE_TYPES = (
    "text/html",
    "image/svg+xml",
    "application/xhtml+xml",
    "text/xml",
    "application/xml",
)


def _may_run_script(name: str) -> bool:
    """A type a browser runs scripts in; or one not known by name (then it is sniffed)."""
    found = type_for_name(name, None)
    return found is None or found.split(";")[0].strip().lower() in _ACTIVE_TYPES


def _static_content(ctx: Context, package: Package, file: str) -> Content | None:
    if package.is_zip:
        if ctx.real_path(package.base_path) is None:
            return None
        archive = ctx.zip_fs(package)
        info = archive.stat(file)
        if info is None or info.is_dir:
            return None
        # opened again when read: the archive may have been closed meanwhile
        opener = functools.partial(ctx.open_zip_member, package, file)
        return Content(file, info.size, info.mtime, opener=opener)
    fs = DirectoryFS(package.base_path)
    info = fs.stat(file)
    real = fs.real_path(file)
    if info is None or info.is_dir or real is None:
        return None
    return Content(file, info.size, info.mtime, path=real)


async def _remote_file(
    ctx: Context, request: Request, name: str, version: str, upstream_path: str
) -> Response | None:
    """Proxy mode: a 301 to the upstream when it has the package; None when it has not."""
    if ctx.upstream is None:
        return None
    try:
        body = await ctx.upstream.package(name, version)
    except UpstreamError as exc:
        log.error("proxy mode: package failed: %s", exc)
        return internal_error(request.method)
    if body is None:
        return None
    response = redirect(ctx.upstream.file_url(upstream_path), request.method)
    response.raw_headers[:0] = [
        (k.encode(), v.encode()) for k, v in cache_headers(ctx.settings.cache_time.catch_all)
    ]
    return response


HANDLERS: dict[str, Handler] = {
    "index": index,
    "search": search_route,
    "categories": categories_route,
    "health": health,
    "favicon": favicon,
    "artifact": artifact,
    "signature": signature,
    "package_index": package_index,
    "static": static,
}
