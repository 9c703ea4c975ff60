"""Which packages a /search or /categories request selects (spec: epr-api §4).

`select(index, Filter(...))` runs the filter over each indexer's list in index order,
joins the lists (an earlier indexer wins for the same name and version) and reduces to the
latest version per name unless `all_versions`. The result is sorted as /search prints it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cmp_to_key
from typing import Any

from fleetgap.packages.model import Package
from fleetgap.packages.render import render_search_item
from fleetgap.packages.tables import has_category
from fleetgap.semver import Constraints, SemverError, Version


@dataclass(frozen=True)
class Discovery:
    """One `discovery=` value: `fields:a,b` or `datasets:x,y`."""

    fields: tuple[str, ...] = ()
    datasets: tuple[str, ...] = ()

    def matches(self, package: Package) -> bool:
        if self.fields:
            own = package.discovery_fields
            if not own or any(f not in self.fields for f in own):
                return False
        if self.datasets:
            own = package.discovery_datasets
            if not own or not any(d in self.datasets for d in own):
                return False
        return True


@dataclass(frozen=True)
class Filter:
    all_versions: bool = False
    category: str = ""
    prerelease: bool = False
    kibana_version: Version | None = None
    agent_version: Version | None = None
    package_name: str = ""
    package_version: str = ""
    package_type: str = ""
    capabilities: tuple[str, ...] | None = None
    spec_min: Version | None = None
    spec_max: Version | None = None
    discovery: tuple[Discovery, ...] = ()
    experimental: bool = False  # deprecated: selects the legacy algorithm

    def spec_constraint(self) -> Constraints | None:
        terms = []
        if self.spec_min is not None:
            terms.append(f">={self.spec_min}")
        if self.spec_max is not None:
            terms.append(f"<={self.spec_max}")
        return Constraints.parse(",".join(terms)) if terms else None


@dataclass(frozen=True)
class Match:
    """A selected package; `templates` keeps only some policy templates (category filter)."""

    package: Package
    templates: tuple[int, ...] | None = None

    @property
    def name(self) -> str:
        return self.package.name

    @property
    def version(self) -> str:
        return self.package.version

    def search_item(self) -> bytes:
        if self.templates is None:
            return self.package.search_item
        return render_search_item(self.base())

    def base(self) -> dict[str, Any]:
        base = self.package.base
        if self.templates is None:
            return base
        kept = [base["policy_templates"][i] for i in self.templates]
        return {
            key: kept if key == "policy_templates" else value
            for key, value in base.items()
            if key != "policy_templates" or kept
        }

    def template_categories(self) -> Iterable[tuple[str, ...] | None]:
        all_categories = self.package.template_categories
        if self.templates is None:
            return all_categories
        return [all_categories[i] for i in self.templates]


def select(indexers: Sequence[Sequence[Package]], query: Filter) -> list[Match]:
    """The packages `query` selects across indexers, sorted by name then version."""
    joined: list[Match] = []
    seen: set[tuple[str, str]] = set()
    for packages in indexers:
        for match in apply(query, packages):
            key = match.package.key
            if key not in seen:
                seen.add(key)
                joined.append(match)
    if not query.all_versions:
        joined = latest_per_name(joined)
    return sort_matches(joined)


def join(local: list[Match], remote: list[Match], all_versions: bool) -> list[Match]:
    """Proxy mode: local packages win for the same name and version."""
    seen = {m.package.key for m in local}
    joined = local + [m for m in remote if m.package.key not in seen]
    if not all_versions:
        joined = latest_per_name(joined)
    return sort_matches(joined)


def apply(query: Filter, packages: Sequence[Package]) -> list[Match]:
    """One indexer's `Filter.Apply` (or the legacy algorithm for `experimental=true`)."""
    if query.experimental:
        return _legacy_apply(query, packages)
    spec = query.spec_constraint()
    selected: list[Package] = []
    slots: dict[str, int] = {}
    for package in packages:
        if not _matches(query, spec, package):
            continue
        if not query.all_versions:
            slot = slots.get(package.name)
            if slot is not None:
                if package.semver.compare(selected[slot].semver) > 0:
                    selected[slot] = package
                continue
            slots[package.name] = len(selected)
        selected.append(package)
    return filter_category(selected, query.category)


def _matches(query: Filter, spec: Constraints | None, package: Package) -> bool:
    hidden = package.release == "experimental" or package.is_prerelease
    if hidden and not query.prerelease:
        return False
    if not _common_match(query, package):
        return False
    agent, wanted_agent = package.agent, query.agent_version
    if agent is not None and wanted_agent is not None and not agent.check(wanted_agent):
        return False
    required, offered = package.capabilities, query.capabilities
    if required is not None and offered is not None and any(c not in offered for c in required):
        return False
    if query.discovery and not all(d.matches(package) for d in query.discovery):
        return False
    return spec is None or (package.spec is not None and spec.check(package.spec))


def _common_match(query: Filter, package: Package) -> bool:
    """The checks both algorithms make: Kibana version, name, version, type."""
    kibana, wanted = package.kibana, query.kibana_version
    if kibana is not None and wanted is not None and not kibana.check(wanted):
        return False
    if query.package_name and query.package_name != package.name:
        return False
    if query.package_version and query.package_version != package.version:
        return False
    return not (query.package_type and query.package_type != package.type)


def _legacy_apply(query: Filter, packages: Sequence[Package]) -> list[Match]:
    selected: list[Package] = []
    slots: dict[str, int] = {}
    for package in packages:
        if not _common_match(query, package):
            continue
        if not query.all_versions:
            slot = slots.get(package.name)
            if slot is not None:
                current = selected[slot]
                same_kind = current.is_prerelease == package.is_prerelease
                if same_kind and current.semver.compare(package.semver) >= 0:
                    continue
                if not current.is_prerelease and package.is_prerelease:
                    continue
                selected[slot] = package
                continue
            slots[package.name] = len(selected)
        selected.append(package)
    if query.all_versions:
        stable = {p.name for p in selected if not p.is_prerelease and not p.is_tech_preview}
        selected = [
            p for p in selected if not (p.name in stable and (p.is_prerelease or p.is_tech_preview))
        ]
    return filter_category(selected, query.category)


def filter_category(packages: list[Package], category: str) -> list[Match]:
    """After latest selection: packages in `category` (or with a template in it)."""
    if not category:
        return [Match(p) for p in packages]
    result = []
    for package in packages:
        if has_category(package.categories, category):
            result.append(Match(package))
            continue
        in_templates = [
            i
            for i, cats in enumerate(package.template_categories)
            if cats is not None and has_category(cats, category)
        ]
        if in_templates:
            kept = tuple(
                i
                for i, cats in enumerate(package.template_categories)
                if cats is not None and category in cats
            )
            result.append(Match(package, kept))
    return result


def latest_per_name(matches: list[Match]) -> list[Match]:
    ordered = sorted(matches, key=cmp_to_key(_newest_first))
    result: list[Match] = []
    current = None
    for match in ordered:
        if match.name != current:
            current = match.name
            result.append(match)
    return result


def sort_matches(matches: list[Match]) -> list[Match]:
    return sorted(matches, key=cmp_to_key(_oldest_first))


def _oldest_first(a: Match, b: Match) -> int:
    if a.name != b.name:
        return -1 if a.name < b.name else 1
    return _compare_versions(a.version, b.version)


def _newest_first(a: Match, b: Match) -> int:
    if a.name != b.name:
        return -1 if a.name < b.name else 1
    return -_compare_versions(a.version, b.version)


def _compare_versions(a: str, b: str) -> int:
    """Go `Packages.Less`: semver (loose) when both parse, else string order."""
    try:
        return Version.parse(a).compare(Version.parse(b))
    except SemverError:
        return (a > b) - (a < b)
