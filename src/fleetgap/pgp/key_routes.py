"""Key hosting: Elastic's key URLs and Fleet Server's upgrade-key endpoint.

`/GPG-KEY-elastic-agent` and `/GPG-KEY-elasticsearch` serve `DATA/keys/<name>` — what
Fleet Server's `server.pgp.upstream_url` and the agent's default remote key URL point at.

`GET /api/agents/upgrades/{major}.{minor}.{patch}/pgp-public-key` behaves as Fleet Server
v9.5.2 does (spec: fleet-server-pgp §1–§6): rate limiter, then integer parameter binding,
then the `Elastic-Api-Version` check, then TLS, then the key from the memory cache (30 min),
else `DATA/keys/default.pgp` (mode exactly 0600), else the upstream URL (fetched once, kept
in memory and written to `default.pgp`). With no upstream URL, fleetgap's own
`DATA/keys/GPG-KEY-elastic-agent` plays the upstream (served, not copied).
"""

from __future__ import annotations

import errno
import json
import logging
import os
import re
import stat
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from fleetgap.net import Net, NetError, NetOptions
from fleetgap.pgp.keys import served_key_problem, write_atomic

log = logging.getLogger("fleetgap.pgp")

API_VERSION = "2023-06-01"  # spec: fleet-server-pgp §1, the only supported value
KEY_FILE = "default.pgp"
PUBLISHED_KEYS = ("GPG-KEY-elastic-agent", "GPG-KEY-elasticsearch")
# Every path `key_routes` answers starts with one of these.
KEY_PATH_PREFIXES = ("/GPG-KEY-", "/api/agents/upgrades/")
CACHE_TTL = 30 * 60.0
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_GO_INT = re.compile(r"^[+-]?[0-9]+$")
_METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]


@dataclass(frozen=True)
class PgpLimits:
    """`server.limits.pgp_retrieval_limit`: one request per `interval` seconds with a bucket
    of `burst`, at most `max` in flight; 0 disables a part (spec: fleet-server-pgp §5).
    Default: Fleet Server's code fallback (5 ms / 25 / 50)."""

    interval: float = 0.005
    burst: int = 25
    max: int = 50


def key_routes(
    data_dir: Path,
    *,
    upstream_url: str | None = None,
    upstream_ca: Path | None = None,
    upstream_timeout: float = 600.0,
    require_tls: bool = True,
    limits: PgpLimits | None = None,
    cache_ttl: float = CACHE_TTL,
) -> list[BaseRoute]:
    """Starlette routes for the key URLs; `data_dir` is the fleetgap data directory."""
    keys_dir = Path(data_dir) / "keys"
    endpoint = _FleetKeyEndpoint(
        keys_dir,
        upstream_url=upstream_url,
        net=NetOptions(ca_cert=upstream_ca, timeout=upstream_timeout, attempts=1),
        require_tls=require_tls,
        limiter=_Limiter(limits or PgpLimits()),
        cache_ttl=cache_ttl,
    )
    routes: list[BaseRoute] = [
        Route(f"/{name}", _published_key(keys_dir / name), methods=["GET", "HEAD"])
        for name in PUBLISHED_KEYS
    ]
    routes.append(
        Route("/api/agents/upgrades/{version}/pgp-public-key", endpoint, methods=_METHODS)
    )
    return routes


def _published_key(path: Path):
    checked = _CheckedKeys()

    async def serve(request: Request) -> Response:
        try:
            body = await run_in_threadpool(checked.read, path)
        except OSError:
            return Response("404 page not found\n", 404, media_type="text/plain")
        except RefusedKey:
            return Response(f"{path.name} is refused\n", 500, media_type="text/plain")
        return Response(body, media_type="application/pgp-keys")

    return serve


class RefusedKey(Exception):
    """A key file in DATA/keys/ that holds more than one certificate: never served."""


class _CheckedKeys:
    """Key files read and checked (one certificate) once per version of the file on disk;
    at most one entry per path, and the paths are the few fixed key names."""

    def __init__(self) -> None:
        self._seen: dict[str, tuple[tuple[int, int, int], bytes]] = {}

    def read(self, path: Path, info: os.stat_result | None = None) -> bytes:
        """The file's bytes; OSError when unreadable, RefusedKey when not one certificate."""
        identity = _identity(info or path.stat())
        seen = self._seen.get(str(path))
        if seen is not None and seen[0] == identity:
            return seen[1]
        body = path.read_bytes()
        problem = served_key_problem(body)
        if problem is not None:
            log.warning("not serving %s: %s", path, problem)
            raise RefusedKey(problem)
        self._seen[str(path)] = (identity, body)
        return body


class _FleetKeyEndpoint:
    def __init__(self, keys_dir, *, upstream_url, net, require_tls, limiter, cache_ttl) -> None:
        self.keys_dir = keys_dir
        self.upstream_url = upstream_url
        self.net = net
        self.require_tls = require_tls
        self.limiter = limiter
        self.cache_ttl = cache_ttl
        self.cache: dict[str, tuple[float, bytes, tuple[int, int, int] | None]] = {}
        self.checked = _CheckedKeys()

    async def __call__(self, scope, receive, send) -> None:
        request = Request(scope, receive)
        response = await self.handle(request)
        response.headers["X-Request-Id"] = request.headers.get("x-request-id") or str(uuid.uuid4())
        await response(scope, receive, send)

    async def handle(self, request: Request) -> Response:
        if request.method != "GET":
            return Response(b"", 405)  # chi's default: only GET is routed
        version = request.path_params["version"]
        parts = version.split(".", 2)
        if len(parts) != 3 or not all(parts):
            return Response("404 page not found\n", 404, media_type="text/plain")
        release = self.limiter.acquire()
        if isinstance(release, Response):
            return release
        try:
            return await self._bound(request, parts)
        finally:
            release()

    async def _bound(self, request: Request, parts: list[str]) -> Response:
        for name, value in zip(("major", "minor", "patch"), parts, strict=True):
            problem = _go_parse_int(value)
            if problem:
                return _error(500, "BadRequest", f"Invalid format for parameter {name}: {problem}")
        api_version, problem = _api_version(request.headers.get("elastic-api-version", ""))
        if problem is not None:
            problem.headers["Elastic-Api-Version"] = API_VERSION
            return problem
        response = await self._key(request)
        response.headers["Elastic-Api-Version"] = api_version
        return response

    async def _key(self, request: Request) -> Response:
        if self.require_tls and request.url.scheme != "https":
            return _error(501, "ErrTLSRequired", "server must run with tls to use this endpoint")
        path = self.keys_dir / KEY_FILE
        try:
            info = path.stat()
        except FileNotFoundError:
            info = None
        except OSError as exc:
            return _error(500, "BadRequest", str(exc))
        # A key put in place since (a bundle load) is answered at once, not after the TTL.
        cached = self.cache.get(str(path))
        if cached and cached[0] > time.monotonic() and cached[2] == _identity(info):
            return _key_response(cached[1])
        if info is not None:
            if stat.S_IMODE(info.st_mode) != 0o600:
                return _error(500, "BadRequest", "pgp key permissions are not 0600")
            try:
                body = await run_in_threadpool(self.checked.read, path, info)
            except OSError as exc:
                return _error(500, "BadRequest", str(exc))
            except RefusedKey:
                return _error(500, "BadRequest", f"{KEY_FILE} holds more than one key")
            self._remember(path, body, info)
            return _key_response(body)
        return await self._upstream(path)

    async def _upstream(self, path: Path) -> Response:
        if self.upstream_url is None:
            local = self.keys_dir / PUBLISHED_KEYS[0]
            try:
                body = await run_in_threadpool(self.checked.read, local)
            except OSError:
                return _error(500, "BadRequest", "upstream http server status error: 404")
            except RefusedKey:
                return _error(500, "BadRequest", f"{local.name} holds more than one key")
            self._remember(path, body)
            return _key_response(body)
        try:
            body = await run_in_threadpool(self._fetch)
        except NetError as exc:
            return _upstream_error(exc)
        if await run_in_threadpool(served_key_problem, body) is not None:
            return _error(500, "BadRequest", "upstream key holds more than one key")
        self._remember(path, body)
        await run_in_threadpool(_store, path, body)
        return _key_response(body)

    def _fetch(self) -> bytes:
        with Net(self.net) as net:
            return net.get_bytes(self.upstream_url or "", limit=16 << 20)

    def _remember(self, path: Path, body: bytes, info: os.stat_result | None = None) -> None:
        self.cache[str(path)] = (time.monotonic() + self.cache_ttl, body, _identity(info))


def _identity(info: os.stat_result | None) -> tuple[int, int, int] | None:
    return (info.st_ino, info.st_mtime_ns, info.st_size) if info else None


def _store(path: Path, body: bytes) -> None:
    """Best effort, like Fleet Server: one-level mkdir 0700, file 0600; failures only logged."""
    try:
        if not path.parent.is_dir():
            os.mkdir(path.parent, 0o700)
    except OSError as exc:
        log.warning("Unable to create directory %s: %s", path.parent, exc)
        return
    try:
        write_atomic(path, body, mode=0o600)
    except OSError as exc:
        log.warning("Unable to write file %s: %s", path, exc)
        return
    log.info("Key written to storage %s", path)


def _go_parse_int(value: str) -> str | None:
    """None if Go's strconv.ParseInt(value, 10, 64) accepts it, else its error text."""
    if not _GO_INT.match(value):
        return (
            f'error binding string parameter: strconv.ParseInt: parsing "{value}": invalid syntax'
        )
    if not -(2**63) <= int(value) < 2**63:
        return (
            f"error binding string parameter: strconv.ParseInt: parsing "
            f'"{value}": value out of range'
        )
    return None


def _api_version(header: str) -> tuple[str, Response | None]:
    if not header:
        return API_VERSION, None
    if not _DATE.match(header):
        message = (
            f'received "{header}", expected a valid date string formatted as YYYY-MM-DD. '
            "invalid version format"
        )
        return API_VERSION, _error(400, "ErrInvalidAPIVersionFormat", message)
    if header != API_VERSION:
        message = (
            f'received "{header}", is not supported. supported versions are: '
            f"[{API_VERSION}] version is not supported"
        )
        return API_VERSION, _error(400, "ErrUnsupportedAPIVersion", message)
    return header, None


def _upstream_error(exc: NetError) -> Response:
    if exc.status is not None:
        return _error(500, "BadRequest", f"upstream http server status error: {exc.status}")
    reason = exc.reason
    if "connection refused" in reason.lower() or f"errno {errno.ECONNREFUSED}" in reason.lower():
        return _error(
            503, "ServiceUnavailable", "Fleet server unable to communicate with Elasticsearch"
        )
    if "timeout" in reason.lower() or "timed out" in reason.lower():
        return _error(408, "RequestTimeout", reason)
    return _error(500, "BadRequest", reason)


def _error(status: int, error: str, message: str) -> Response:
    body = json.dumps(
        {"statusCode": status, "error": error, "message": message},
        separators=(",", ":"),
        ensure_ascii=False,
    )
    # Go's encoding/json escapes these for HTML safety
    body = body.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    response = Response(body, status, media_type="application/json")
    response.headers["Content-Type"] = "application/json; charset=utf-8"
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


def _key_response(body: bytes) -> Response:
    response = Response(body, 200)
    response.headers["Content-Type"] = _sniff(body)
    return response


def _sniff(body: bytes) -> str:
    """Go's http.DetectContentType for what a key endpoint may serve (text, HTML, binary)."""
    head = body[:512]
    stripped = head.lstrip(b"\t\n\x0c\r ").lower()
    if stripped.startswith((b"<!doctype html", b"<html", b"<head", b"<body", b"<p")):
        return "text/html; charset=utf-8"
    if any(b <= 0x08 or b == 0x0B or 0x0E <= b <= 0x1A or 0x1C <= b <= 0x1F for b in head):
        return "application/octet-stream"
    return "text/plain; charset=utf-8"


class _Limiter:
    """Token bucket plus an in-flight cap, checked in Fleet Server's order (rate, then max)."""

    def __init__(self, limits: PgpLimits) -> None:
        self.limits = limits
        self.tokens = float(limits.burst)
        self.updated = time.monotonic()
        self.in_flight = 0
        self.lock = threading.Lock()

    def acquire(self):
        with self.lock:
            if self.limits.interval > 0:
                now = time.monotonic()
                refill = (now - self.updated) / self.limits.interval
                self.tokens = min(float(self.limits.burst), self.tokens + refill)
                self.updated = now
                if self.tokens < 1:
                    return _error(429, "RateLimit", "exceeded the rate limit")
                self.tokens -= 1
            if self.limits.max > 0:
                if self.in_flight >= self.limits.max:
                    return _error(429, "MaxLimit", "exceeded the max limit")
                self.in_flight += 1
                return self._release
            return lambda: None

    def _release(self) -> None:
        with self.lock:
            self.in_flight -= 1
