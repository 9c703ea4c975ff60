"""Proxy mode: ask an upstream registry too, and send clients to it for its files.

spec: epr-api §4.7. /search and /categories forward the same path and query; a package,
artifact or static lookup that misses locally asks `<proxy-to>/package/<n>/<v>/`. Files
of upstream packages are answered with a 301 to the upstream.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

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

TIMEOUT = 10.0  # seconds, as the Go registry's proxy client
ATTEMPTS = 5  # the first try and four retries


class UpstreamError(Exception):
    pass


class _Retry(Exception):
    pass


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
        data = await self._get_json(path_and_query)
        if not isinstance(data, list):
            raise UpstreamError("upstream /search did not answer a list")
        return [Match(remote_package(item)) for item in data if isinstance(item, dict)]

    async def categories(self, path_and_query: str) -> list[CategoryCount]:
        data = await self._get_json(path_and_query)
        if not isinstance(data, list):
            raise UpstreamError("upstream /categories did not answer a list")
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

    async def package(self, name: str, version: str) -> bytes | None:
        """The upstream /package/<n>/<v>/ document, or None when upstream has no such package."""
        response = await self._get(f"/package/{name}/{version}/")
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            raise UpstreamError(f"unexpected status code {response.status_code} received")
        return response.content

    def file_url(self, path: str) -> str:
        return self.base_url + path

    async def _get_json(self, path_and_query: str) -> Any:
        response = await self._get(path_and_query)
        try:
            return json.loads(response.content)
        except ValueError as exc:
            raise UpstreamError(f"upstream answered invalid JSON: {exc}") from None

    async def _get(self, path_and_query: str) -> httpx.Response:
        url = self.base_url + path_and_query
        try:
            async for attempt in stamina.retry_context(
                on=(httpx.TransportError, _Retry), attempts=ATTEMPTS, wait_max=15.0
            ):
                with attempt:
                    response = await self.client.get(url)
                    if response.status_code >= 500 or response.status_code == 429:
                        raise _Retry(f"upstream status {response.status_code}")
                    ok = 200 <= response.status_code < 300
                    media = response.headers.get("content-type", "")
                    if ok and not media.startswith("application/json"):
                        raise _Retry(f"unexpected content type: {media}")
                    return response
        except (httpx.HTTPError, _Retry) as exc:
            reason = without_userinfo(f"can't proxy request to {url}: {exc}")
            raise UpstreamError(reason) from None
        raise AssertionError("unreachable")

    async def aclose(self) -> None:
        await self.client.aclose()


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
