"""Proxy mode: ask an upstream registry too, and send clients to it for its files.

spec: epr-api §4.7. /search and /categories forward the same path and query; a package,
artifact or static lookup that misses locally asks `<proxy-to>/package/<n>/<v>/`. Files
of upstream packages are answered with a 301 to the upstream.

The upstream is outside: each answer is read with a byte cap and within an overall deadline
(as Go's http.Client.Timeout, body included), and only a valid package name is ever put into
an upstream URL (a `?`, `#`, `/` or CR LF from a client's path would change the request).
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote

import anyio
import anyio.to_thread
import httpx
import stamina

from fleetgap import __version__
from fleetgap.errors import without_userinfo
from fleetgap.packages import schema
from fleetgap.packages.categories import CategoryCount
from fleetgap.packages.model import Package
from fleetgap.packages.render import render_search_item
from fleetgap.packages.search import Match
from fleetgap.semver import SemverError, Version

TIMEOUT = 10.0  # seconds for one whole answer, as the Go registry's proxy client
ATTEMPTS = 5  # the first try and four retries
# epr.elastic.co's largest answer, /search?all=true&prerelease=true, is a few MB.
MAX_BODY = 64 << 20
# An upstream list answer: Elastic's largest (/search?all=true) holds some ten thousand items
MAX_ITEMS = 100_000
# Objects and values (`{` and `,`) in one answer, counted before parsing: json.loads of the
# most this allows stays within a few hundred MB, where 64 MiB of `{},` would take 1.6 GB
MAX_STRUCTURE = 5_000_000

T = TypeVar("T")
PACKAGE_NAME = re.compile(r"^[a-z0-9_]+$")  # what EPR accepts as a package name


class UpstreamError(Exception):
    pass


class _Retry(Exception):
    pass


@dataclass(frozen=True)
class _Answer:
    status_code: int
    content: bytes


# Upstream objects are JSON, not manifests: every field is read by its JSON name.
_UPSTREAM_BASE = schema.Struct(
    "upstream",
    tuple(schema.Field(f.name, f.kind, f.omit, "") for f in schema.BASE_PACKAGE.fields),
)


class Upstream:
    def __init__(self, base_url: str, client: httpx.AsyncClient | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.client = client or httpx.AsyncClient(
            timeout=TIMEOUT, headers={"user-agent": f"fleetgap/{__version__}"}
        )

    async def search(self, path_and_query: str) -> list[Match]:
        return await self._read_list(path_and_query, "/search", _search_matches)

    async def categories(self, path_and_query: str) -> list[CategoryCount]:
        return await self._read_list(path_and_query, "/categories", _category_counts)

    async def package(self, name: str, version: str) -> bytes | None:
        """The upstream /package/<n>/<v>/ document, or None when upstream has no such package
        (an invalid name is not asked about)."""
        if not PACKAGE_NAME.fullmatch(name):
            return None
        response = await self._get(f"/package/{name}/{quote(version, safe='+')}/")
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            raise UpstreamError(f"unexpected status code {response.status_code} received")
        return response.content

    def file_url(self, path: str) -> str:
        """Where a client is sent for an upstream file: the -proxy-to URL without its
        user-info, which is a secret between fleetgap and the upstream, never handed to
        every client in a Location header."""
        return without_userinfo(self.base_url) + quote(path, safe="/$&+,:;=@")

    async def _read_list(
        self, path_and_query: str, route: str, convert: Callable[[list[Any]], list[T]]
    ) -> list[T]:
        """An upstream list answer, parsed and converted off the event loop, one answer at a
        time per worker: a hostile upstream's answer costs one thread and bounded memory,
        never the other routes' time."""
        response = await self._get(path_and_query)
        return await anyio.to_thread.run_sync(
            _parse_list, response.content, route, convert, limiter=_parsing()
        )

    async def _get(self, path_and_query: str) -> _Answer:
        url = self.base_url + path_and_query
        try:
            async for attempt in stamina.retry_context(
                on=(httpx.TransportError, _Retry), attempts=ATTEMPTS, wait_max=15.0
            ):
                with attempt:
                    async with asyncio.timeout(TIMEOUT):
                        return await self._once(url)
        except TimeoutError:  # a trickle stays a trickle: not retried
            reason = f"can't proxy request to {url}: no whole answer within {TIMEOUT:g} s"
            raise UpstreamError(without_userinfo(reason)) from None
        except (httpx.HTTPError, httpx.InvalidURL, _Retry) as exc:
            reason = without_userinfo(f"can't proxy request to {url}: {exc}")
            raise UpstreamError(reason) from None
        raise AssertionError("unreachable")

    async def _once(self, url: str) -> _Answer:
        async with self.client.stream("GET", url) as response:
            status = response.status_code
            if status >= 500 or status == 429:
                raise _Retry(f"upstream status {status}")
            media = response.headers.get("content-type", "")
            if 200 <= status < 300 and not media.startswith("application/json"):
                raise _Retry(f"unexpected content type: {media}")
            if status == 404:
                return _Answer(status, b"")
            return _Answer(status, await _read_capped(response, url))

    async def aclose(self) -> None:
        await self.client.aclose()


def _parse_list(body: bytes, route: str, convert: Callable[[list[Any]], list[T]]) -> list[T]:
    # what json.loads would build, counted before it runs: a body of a million `{},` is
    # 3 MB but a gigabyte as objects
    structure = body.count(b"{") + body.count(b",")
    if structure > MAX_STRUCTURE:
        raise UpstreamError(
            f"upstream {route} answered {structure} JSON values, more than {MAX_STRUCTURE}"
        )
    try:
        data = json.loads(body)
    except ValueError as exc:
        raise UpstreamError(f"upstream answered invalid JSON: {exc}") from None
    if not isinstance(data, list):
        raise UpstreamError(f"upstream {route} did not answer a list")
    if len(data) > MAX_ITEMS:
        raise UpstreamError(f"upstream {route} answered {len(data)} items, more than {MAX_ITEMS}")
    return convert(data)


def _search_matches(data: list[Any]) -> list[Match]:
    return [Match(remote_package(item)) for item in data if isinstance(item, dict)]


def _category_counts(data: list[Any]) -> list[CategoryCount]:
    return [
        CategoryCount(
            str(c.get("id", "")),
            str(c.get("title", "")),
            int(c.get("count", 0)),
            str(c.get("parent_id", "")),
            str(c.get("parent_title", "")),
        )
        for c in data
        if isinstance(c, dict)
    ]


_PARSE_SLOT: anyio.CapacityLimiter | None = None


def _parsing() -> anyio.CapacityLimiter:
    """One upstream answer parsed at a time in this worker, on a thread of its own (made on
    first use, in the worker's event loop); other answers wait their turn."""
    global _PARSE_SLOT
    if _PARSE_SLOT is None:
        _PARSE_SLOT = anyio.CapacityLimiter(1)
    return _PARSE_SLOT


async def _read_capped(response: httpx.Response, url: str) -> bytes:
    too_large = without_userinfo(f"can't proxy request to {url}: larger than {MAX_BODY} bytes")
    length = response.headers.get("content-length", "")
    if length.isdigit() and int(length) > MAX_BODY:
        raise UpstreamError(too_large)
    body = bytearray()
    async for chunk in response.aiter_bytes():
        body += chunk
        if len(body) > MAX_BODY:
            raise UpstreamError(too_large)
    return bytes(body)


def remote_package(item: dict[str, Any]) -> Package:
    """An upstream /search item as a package that only has its BasePackage document."""
    model = schema.decode(_UPSTREAM_BASE, item)
    base = schema.encode(schema.BASE_PACKAGE, model)
    name, version = str(model.get("name", "")), str(model.get("version", ""))
    try:
        semver = Version.parse(version)
    except SemverError:
        semver = Version(0, 0, 0, "", "", version)
    package = Package(
        name=name,
        version=version,
        semver=semver,
        release=str(model.get("release", "")),
        type=str(model.get("type", "")),
        categories=tuple(model.get("categories", [])),
        template_categories=(),
        kibana=None,
        agent=None,
        capabilities=None,
        spec=None,
        discovery_fields=(),
        discovery_datasets=(),
        base_path=Path(),
        is_zip=False,
        signed=False,
        model=model,
        remote=True,
    )
    package.search_item = render_search_item(base)
    return package
