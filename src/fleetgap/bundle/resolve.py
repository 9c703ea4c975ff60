"""Which packages and artifacts a selection stands for.

Packages resolve as the Go `distribution` tool resolves them (spec: epr-api §12): for every
matrix entry × query (a single empty matrix entry when there is none), the two merged with
the query's keys on top, one `GET <address>/search?<keys sorted, url-encoded>`; the results
united by (name, version) with the pinned packages, which come first and win; the whole
sorted by name, then by semantic version (versions that do not parse first).
Artifacts are the catalogue's selection per `artifacts:` entry, each with its source.
"""

from __future__ import annotations

import json
import re
import urllib.parse
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import cmp_to_key

from fleetgap.artifacts.catalogue import Artifact, Catalogue, load_catalogue
from fleetgap.bundle.selection import QuerySet, Selection
from fleetgap.errors import FleetgapError
from fleetgap.net import Net
from fleetgap.semver import SemverError, Version

_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]*$")
_SEARCH_LIMIT = 64 << 20  # bytes of one /search answer (the whole of epr.elastic.co is ~10 MB)


@dataclass(frozen=True)
class PackageRef:
    """A package to fetch: `download` and `signature_path` are relative to the address."""

    name: str
    version: str
    download: str
    signature_path: str

    @property
    def file_name(self) -> str:
        """`<name>-<version>.zip`, the name in DATA/packages/ (checked to be path-safe)."""
        name = f"{self.name}-{self.version}.zip"
        if not _SAFE_NAME.match(name):
            raise FleetgapError(f"the registry lists a package with an unusable name: {name!r}")
        return name


@dataclass(frozen=True)
class ArtifactRef:
    artifact: Artifact
    source: str


def search_urls(selection: Selection) -> list[str]:
    """Every /search URL the Go tool requests for this selection, in its order."""
    base = selection.address.rstrip("/") + "/search"
    matrix = selection.matrix or (QuerySet(()),)
    urls = []
    for entry in matrix:
        for query in selection.queries:
            values = sorted(entry.merged(query).items())
            encoded = urllib.parse.urlencode(values)  # Go's url.Values.Encode: sorted keys
            urls.append(f"{base}?{encoded}" if encoded else base)
    return urls


def resolve_packages(
    selection: Selection,
    net: Net,
    parallel: int = 4,
    on_unmatched: Callable[[list[str]], None] | None = None,
) -> list[PackageRef]:
    """The selection's packages, as the Go tool lists them. With `on_unmatched`, it is
    called once with a line for each query that matches nothing for any matrix entry and
    each pinned package the registry does not list (the Go tool says nothing of either)."""
    found: dict[tuple[str, str], PackageRef] = {}
    for pin in selection.packages:
        path = f"epr/{pin.name}/{pin.name}-{pin.version}.zip"
        found[(pin.name, pin.version)] = PackageRef(pin.name, pin.version, path, path + ".sig")
    urls = search_urls(selection)
    with ThreadPoolExecutor(max_workers=max(1, parallel)) as pool:
        answers = list(pool.map(lambda url: _search(net, url), urls))
        if on_unmatched is not None:
            on_unmatched(_unmatched(selection, net, answers, pool))
    for answer in answers:
        for ref in answer:
            found.setdefault((ref.name, ref.version), ref)
    return sorted(found.values(), key=cmp_to_key(compare_packages))


def _unmatched(
    selection: Selection, net: Net, answers: list[list[PackageRef]], pool: ThreadPoolExecutor
) -> list[str]:
    lines = []
    count = len(selection.queries)
    for index, query in enumerate(selection.queries):  # answers are matrix-major
        if not any(answers[m * count + index] for m in range(len(answers) // max(count, 1))):
            shown = " ".join(f"{k}={v}" for k, v in query.values) or "(empty query)"
            lines.append(f"query {shown} matches no package at {selection.address}")
    names = sorted({pin.name for pin in selection.packages})
    base = selection.address.rstrip("/") + "/search?"
    every = [
        base + urllib.parse.urlencode({"all": "true", "package": name, "prerelease": "true"})
        for name in names
    ]
    listed = pool.map(lambda url: _search(net, url), every)
    known = {(ref.name, ref.version) for answer in listed for ref in answer}
    for pin in selection.packages:
        if (pin.name, pin.version) not in known:
            lines.append(
                f"pinned package {pin.name} {pin.version} is not listed at {selection.address}"
            )
    return lines


def compare_packages(a: PackageRef, b: PackageRef) -> int:
    """Name (byte order), then semantic version; an unparsable version sorts first."""
    if a.name != b.name:
        return -1 if a.name.encode() < b.name.encode() else 1
    va, vb = _version(a.version), _version(b.version)
    if va is None or vb is None:
        return (va is not None) - (vb is not None)
    return va.compare(vb)


def package_url(address: str, path: str) -> str:
    """`path` (a search result's `download`/`signature_path`) under the registry address."""
    return address.rstrip("/") + "/" + path.lstrip("/")


def resolve_artifacts(
    selection: Selection, catalogue: Catalogue | None = None
) -> list[ArtifactRef]:
    """Every artifact of every `artifacts:` entry, once (the first entry naming a path wins)."""
    if not selection.artifacts:
        return []
    catalogue = catalogue or load_catalogue()
    found: dict[str, ArtifactRef] = {}
    for entry in selection.artifacts:
        for version in entry.versions:
            for artifact in catalogue.select(
                version, entry.products, entry.platforms, entry.package_types
            ):
                found.setdefault(artifact.path, ArtifactRef(artifact, entry.source))
    return list(found.values())


def _search(net: Net, url: str) -> list[PackageRef]:
    body = net.get_bytes(url, limit=_SEARCH_LIMIT)
    try:
        listed = json.loads(body)
    except ValueError:
        raise FleetgapError(f"{url}: the answer is not JSON") from None
    if not isinstance(listed, list):
        raise FleetgapError(f"{url}: expected a JSON list of packages")
    return [_package(url, item) for item in listed]


def _package(url: str, item: object) -> PackageRef:
    if not isinstance(item, dict) or not all(
        isinstance(item.get(key), str) and item.get(key) for key in ("name", "version", "download")
    ):
        raise FleetgapError(f"{url}: a listed package lacks name, version or download")
    signature = item.get("signature_path")
    download = item["download"]
    return PackageRef(
        item["name"],
        item["version"],
        download,
        signature if isinstance(signature, str) and signature else download + ".sig",
    )


def _version(text: str) -> Version | None:
    try:
        return Version.parse(text)
    except SemverError:
        return None


def package_names(refs: Sequence[PackageRef]) -> list[str]:
    return [f"{ref.name} {ref.version}" for ref in refs]
