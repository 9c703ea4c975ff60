"""The product catalogue: which files Elastic publishes for a version, and where.

The shipped `catalogue.yml` lists every product of Elastic's air-gap guide; users may add
or override products with their own YAML of the same shape. `Catalogue.select` turns a
version and a selection into `Artifact`s: relative paths in Elastic's download layout
(spec: agent-artifacts §2.2, §2.3).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from fleetgap.errors import FleetgapError

# spec: agent-artifacts §7 (SemVer M.m.p[-prerelease][+build]); also keeps names path-safe.
_VERSION = re.compile(
    r"^(?P<major>0|[1-9]\d*)\.(?P<minor>0|[1-9]\d*)\.(?P<patch>0|[1-9]\d*)"
    r"(?:-(?P<pre>[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*))?"
    r"(?:\+(?P<build>[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*))?$"
)
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


@dataclass(frozen=True)
class Artifact:
    """One published file (the binary; its `.sha512` and `.asc` sit beside it)."""

    product: str
    version: str
    platform: str
    package_type: str
    path: str  # relative to downloads/, '/'-separated: beats/elastic-agent/elastic-agent-…

    @property
    def name(self) -> str:
        return self.path.rsplit("/", 1)[-1]

    @property
    def sidecars(self) -> tuple[str, str]:
        return (f"{self.path}.sha512", f"{self.path}.asc")


@dataclass(frozen=True)
class Offer:
    """The package types a product publishes on one platform, for versions in [since, until)."""

    platform: str
    package_types: tuple[str, ...]
    since: tuple[int, int, int] | None = None
    until: tuple[int, int, int] | None = None

    def covers(self, version: str) -> bool:
        release = release_tuple(version)
        if self.since is not None and release < self.since:
            return False
        return not (self.until is not None and release >= self.until)


@dataclass(frozen=True)
class Product:
    name: str
    directory: str
    prefix: str
    offers: tuple[Offer, ...]


@dataclass(frozen=True)
class Catalogue:
    products: Mapping[str, Product]
    suffixes: Mapping[str, Mapping[str, str]]  # platform -> package type -> file-name suffix
    default_package_types: tuple[str, ...]

    @property
    def platforms(self) -> tuple[str, ...]:
        return tuple(self.suffixes)

    @property
    def package_types(self) -> tuple[str, ...]:
        seen: dict[str, None] = {}
        for spelled in self.suffixes.values():
            seen.update(dict.fromkeys(spelled))
        return tuple(seen)

    def select(
        self,
        version: str,
        products: Sequence[str] = (),
        platforms: Sequence[str] = (),
        package_types: Sequence[str] = (),
    ) -> list[Artifact]:
        """Every file of `version` matching the selection (empty selection = everything)."""
        version = check_version(version)
        wanted_products = _known(products, self.products, "product") or tuple(self.products)
        wanted_platforms = set(_known(platforms, self.suffixes, "platform") or self.platforms)
        wanted_types = set(
            _known(package_types, self.package_types, "package type") or self.default_package_types
        )
        artifacts = []
        for product in (self.products[name] for name in wanted_products):
            for offer in product.offers:
                if offer.platform not in wanted_platforms or not offer.covers(version):
                    continue
                for package_type in offer.package_types:
                    if package_type in wanted_types:
                        artifacts.append(self._artifact(product, version, offer, package_type))
        if not artifacts:
            raise FleetgapError(f"the selection matches no published file for version {version}")
        return artifacts

    def _artifact(self, product: Product, version: str, offer: Offer, kind: str) -> Artifact:
        suffix = self.suffixes[offer.platform][kind]
        name = f"{product.prefix}-{version}-{suffix}"
        return Artifact(product.name, version, offer.platform, kind, f"{product.directory}/{name}")


def load_catalogue(extra: Iterable[Path] = ()) -> Catalogue:
    """The shipped catalogue, then each user YAML in order (later products replace earlier)."""
    shipped = resources.files("fleetgap.artifacts").joinpath("catalogue.yml").read_text("utf-8")
    documents = [("catalogue.yml", yaml.load(shipped, Loader=_Loader))]
    for path in extra:
        try:
            documents.append((str(path), yaml.load(path.read_text("utf-8"), Loader=_Loader)))
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
            raise FleetgapError(f"cannot read catalogue {path}: {_first_line(exc)}") from None
    return _build(documents)


def check_version(version: str) -> str:
    """The trimmed version, or a FleetgapError if it is not `M.m.p[-pre][+build]`."""
    trimmed = version.strip()
    if not _VERSION.match(trimmed):
        raise FleetgapError(f"not a version: {version!r} (expected M.m.p[-prerelease][+build])")
    return trimmed


def release_tuple(version: str) -> tuple[int, int, int]:
    match = _VERSION.match(version.strip())
    if not match:
        raise FleetgapError(f"not a version: {version!r}")
    return int(match["major"]), int(match["minor"]), int(match["patch"])


_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _build(documents: list[tuple[str, Any]]) -> Catalogue:
    suffixes: dict[str, dict[str, str]] = {}
    raw_products: dict[str, tuple[str, Mapping[str, Any]]] = {}
    default_types: tuple[str, ...] = ()
    for origin, document in documents:
        if not isinstance(document, Mapping):
            raise FleetgapError(f"catalogue {origin}: expected a mapping at the top")
        for key in ("platforms", "products"):
            if not isinstance(document.get(key) or {}, Mapping):
                raise FleetgapError(f"catalogue {origin}: '{key}' must be a mapping")
        for platform, spelled in (document.get("platforms") or {}).items():
            if not isinstance(spelled, Mapping) or not all(
                isinstance(v, str) and _NAME.match(v) for v in spelled.values()
            ):
                raise FleetgapError(f"catalogue {origin}: platform {platform}: bad suffixes")
            suffixes.setdefault(str(platform), {}).update({str(k): v for k, v in spelled.items()})
        if "default_package_types" in document:
            default_types = tuple(str(t) for t in document["default_package_types"])
        for name, body in (document.get("products") or {}).items():
            if not isinstance(body, Mapping):
                raise FleetgapError(f"catalogue {origin}: product {name}: expected a mapping")
            raw_products[str(name)] = (origin, body)
    products = {
        name: _product(origin, name, body, suffixes)
        for name, (origin, body) in raw_products.items()
    }
    return Catalogue(products, suffixes, default_types or tuple(_all_types(suffixes)))


def _product(
    origin: str, name: str, body: Mapping[str, Any], suffixes: Mapping[str, Mapping[str, str]]
) -> Product:
    where = f"catalogue {origin}: product {name}"
    directory = str(body.get("directory", "")).strip("/")
    prefix = str(body.get("prefix", name))
    if not _NAME.match(name) or not _NAME.match(prefix):
        raise FleetgapError(f"{where}: names may hold letters, digits, '.', '_' and '-' only")
    if not directory or any(not _NAME.match(part) for part in directory.split("/")):
        raise FleetgapError(f"{where}: 'directory' must be a relative path like beats/filebeat")
    offers = []
    if not isinstance(body.get("platforms") or {}, Mapping):
        raise FleetgapError(f"{where}: 'platforms' must be a mapping")
    for platform, entry in (body.get("platforms") or {}).items():
        if platform not in suffixes:
            raise FleetgapError(f"{where}: unknown platform {platform}")
        spec = entry if isinstance(entry, Mapping) else {"types": entry}
        raw_types = spec.get("types") or ()
        if not isinstance(raw_types, list | tuple):
            raise FleetgapError(f"{where}: {platform}: package types must be a list")
        types = tuple(str(t) for t in raw_types)
        unknown = [t for t in types if t not in suffixes[platform]]
        if unknown:
            raise FleetgapError(f"{where}: {platform} has no package type {', '.join(unknown)}")
        offers.append(
            Offer(
                platform, types, _bound(where, spec.get("since")), _bound(where, spec.get("until"))
            )
        )
    if not offers:
        raise FleetgapError(f"{where}: no platforms")
    return Product(name, directory, prefix, tuple(offers))


def _bound(where: str, value: object) -> tuple[int, int, int] | None:
    if value is None:
        return None
    text = str(value)
    if not _VERSION.match(text):
        raise FleetgapError(f"{where}: since/until must be M.m.p, not {text!r}")
    return release_tuple(text)


def _known(asked: Sequence[str], known: Iterable[str], what: str) -> tuple[str, ...]:
    known = tuple(known)
    unknown = [item for item in asked if item not in known]
    if unknown:
        raise FleetgapError(f"unknown {what} {', '.join(unknown)} (known: {', '.join(known)})")
    return tuple(dict.fromkeys(asked))


def _all_types(suffixes: Mapping[str, Mapping[str, str]]) -> list[str]:
    return list(dict.fromkeys(t for spelled in suffixes.values() for t in spelled))


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]
