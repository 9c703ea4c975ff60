"""The selection file: what crosses the gap.

The Go `distribution` tool's config works unchanged (spec: epr-api §12: `address`, `matrix`,
`queries`, `packages`, `actions`); fleetgap adds `artifacts:` (agent binaries from the
artifacts catalogue) and `keys:` (the key files the closed side serves). Unlike the Go tool,
which ignores what it does not know, every mistake is one error naming the file and line:
the file is composed into PyYAML nodes, whose marks carry the line numbers.

    artifacts:
      - source: https://artifacts.elastic.co/downloads/   # optional, this is the default
        versions: [9.1.0]
        products: [elastic-agent, fleet-server]           # optional: default all
        platforms: [linux-x86_64]                         # optional: default all
        package_types: [tar.gz]                           # optional: catalogue's default
    keys:
      - GPG-KEY-elastic-agent                             # from the artifacts' source
      - file: default.pgp                                 # Fleet Server's key file
        source: ./elastic-agent.asc                       # a URL or a local path
        fingerprint: 46095ACC8548582C1A2699A9D27D666CD88E42B4   # default: Elastic's, pinned
    kit:                                                  # fleetgap's own wheels (bundle/kit.py)
      platforms: [linux-x86_64]
      python: ["3.11"]
      find_links: ./wheels        # optional: only this folder (beside the file), not the index
    protection_artifacts:                                 # Elastic Defend's, per Endpoint version
      versions: [9.1.0, 8.19.4]
      source: https://artifacts.security.elastic.co       # optional, this is the default
      public_key: ./defend-manifest.pem                   # optional: checks manifest.sig
"""

from __future__ import annotations

import math
import re
import urllib.parse
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import yaml

from fleetgap.artifacts import defend
from fleetgap.artifacts.catalogue import Catalogue, check_version, load_catalogue
from fleetgap.artifacts.urls import DEFAULT_SOURCE, check_source
from fleetgap.bundle.kit import PLATFORM_TAGS, PYTHONS
from fleetgap.errors import FleetgapError
from fleetgap.pgp.elastic_key import AGENT_KEY_FILE, ELASTIC_KEY_FILE, ELASTIC_KEY_URL
from fleetgap.pgp.keys import ELASTIC_FINGERPRINT

DEFAULT_ADDRESS = "https://epr.elastic.co"  # spec: epr-api §12
# spec: epr-api §12 — the query-set keys; True marks the booleans (sent as "true").
QUERY_KEYS: Mapping[str, bool] = {
    "package": False,
    "all": True,
    "prerelease": True,
    "type": False,
    "kibana.version": False,
    "spec.min": False,
    "spec.max": False,
}
AGENT_KEY_URL = "https://artifacts.elastic.co/GPG-KEY-elastic-agent"
FLEET_SERVER_KEY_FILE = "default.pgp"
# The key files the closed side serves, and where Elastic publishes each by default.
KEY_SOURCES: Mapping[str, str] = {
    AGENT_KEY_FILE: AGENT_KEY_URL,
    ELASTIC_KEY_FILE: ELASTIC_KEY_URL,
    FLEET_SERVER_KEY_FILE: AGENT_KEY_URL,  # what Fleet Server fetches when it has no file
}
_TOP_KEYS = (
    "address", "matrix", "queries", "packages", "actions", "artifacts", "keys", "kit",
    "protection_artifacts",
)  # fmt: skip
_DEFEND_KEYS = ("versions", "source", "public_key")
_ARTIFACT_KEYS = ("source", "versions", "products", "platforms", "package_types")
_FINGERPRINT = re.compile(r"^[0-9A-F]{40}$")
_PACKAGE_NAME = re.compile(r"^[a-z0-9_]+$")  # what EPR accepts as a package name
_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class SelectionError(FleetgapError):
    """A mistake in a selection file: `<file>:<line>: <what is wrong>`."""


@dataclass(frozen=True)
class QuerySet:
    """One `matrix` or `queries` entry as Go sends it: false and empty values left out."""

    values: tuple[tuple[str, str], ...]

    def merged(self, query: QuerySet) -> dict[str, str]:
        """This matrix entry with `query` on top (query keys override matrix keys)."""
        return dict(self.values) | dict(query.values)


@dataclass(frozen=True)
class PinnedPackage:
    name: str
    version: str


@dataclass(frozen=True)
class PrintAction:
    pass


@dataclass(frozen=True)
class DownloadAction:
    destination: Path
    address: str | None = None  # default: the selection's address


Action = PrintAction | DownloadAction


@dataclass(frozen=True)
class ArtifactSet:
    """One `artifacts:` entry: the catalogue's selection for some versions, from one source."""

    source: str
    versions: tuple[str, ...]
    products: tuple[str, ...] = ()
    platforms: tuple[str, ...] = ()
    package_types: tuple[str, ...] = ()


@dataclass(frozen=True)
class KeySpec:
    """One `keys:` entry: `file` under DATA/keys/, fetched from `source` (URL or path)."""

    file: str
    source: str
    fingerprint: str  # the key must have exactly this primary fingerprint

    @property
    def is_url(self) -> bool:
        return self.source.startswith(("http://", "https://"))


@dataclass(frozen=True)
class KitSpec:
    """The `kit:` entry: fleetgap's wheels for these platforms and Pythons (under DATA/kit/)."""

    platforms: tuple[str, ...]
    pythons: tuple[str, ...]
    find_links: Path | None = None  # take the wheels from this folder only, not the index


@dataclass(frozen=True)
class ProtectionArtifacts:
    """`protection_artifacts:`: Elastic Defend's manifests (and what they list) per version."""

    source: str
    versions: tuple[str, ...]
    public_key: Path | None = None  # PEM key that must verify each zip's manifest.sig


@dataclass(frozen=True)
class Selection:
    path: Path
    address: str
    matrix: tuple[QuerySet, ...]
    queries: tuple[QuerySet, ...]
    packages: tuple[PinnedPackage, ...]
    actions: tuple[Action, ...]
    artifacts: tuple[ArtifactSet, ...]
    keys: tuple[KeySpec, ...]
    document: Mapping[str, Any]  # the file as plain data, for the bundle manifest
    kit: KitSpec | None = None
    protection_artifacts: ProtectionArtifacts | None = None


def load_selection(path: Path, catalogue: Catalogue | None = None) -> Selection:
    """Read and check a selection file; a SelectionError names the file and line."""
    path = Path(path)
    try:
        text = path.read_text("utf-8")
    except OSError as exc:
        raise FleetgapError(f"cannot read selection {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise FleetgapError(f"{path}: not UTF-8 text") from None
    return parse_selection(text, path, catalogue)


def parse_selection(text: str, path: Path, catalogue: Catalogue | None = None) -> Selection:
    reader = _Reader(str(path))
    try:
        root = yaml.compose(text, Loader=_Loader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else 1
        raise SelectionError(f"{path}:{line}: not valid YAML: {exc.problem or exc}") from None
    except yaml.YAMLError as exc:
        raise SelectionError(f"{path}:1: not valid YAML: {exc}") from None
    if root is None:
        raise SelectionError(f"{path}:1: the selection file is empty")
    top = reader.mapping(root, "the selection", _TOP_KEYS)
    address = reader.string(top["address"], "address") if "address" in top else ""
    if address and not address.startswith(("http://", "https://")):
        reader.fail(top["address"], f"address must be an http:// or https:// URL, not {address!r}")
    address = address or DEFAULT_ADDRESS
    base = path.parent
    artifacts = tuple(reader.artifact_sets(top.get("artifacts"), catalogue))
    return Selection(
        path=path,
        address=address,
        matrix=tuple(reader.query_sets(top.get("matrix"), "matrix")),
        queries=tuple(reader.query_sets(top.get("queries"), "queries")),
        packages=tuple(reader.pinned(top.get("packages"))),
        actions=tuple(reader.actions(top.get("actions"))),
        artifacts=artifacts,
        # key paths: beside the file; bare key names: beside the artifacts' source
        keys=tuple(reader.keys(top.get("keys"), base, {a.source for a in artifacts})),
        document=_plain(root),
        kit=reader.kit(top["kit"], base) if "kit" in top else None,
        protection_artifacts=reader.protection_artifacts(top.get("protection_artifacts"), base),
    )


def key_url_beside(source: str, file: str) -> str:
    """Where an artifact source publishes key file `file`: beside its `downloads/` folder, as
    artifacts.elastic.co and `fleetgap serve` do, else in the source folder itself."""
    upstream_name = KEY_SOURCES[file].rsplit("/", 1)[1]
    folder = source if source.endswith("/") else source + "/"
    path = urllib.parse.urlsplit(folder).path
    return urllib.parse.urljoin(
        folder, ("../" if path.endswith("/downloads/") else "") + upstream_name
    )


class _Reader:
    """Typed reads of YAML nodes; every failure is one SelectionError at the node's line."""

    def __init__(self, origin: str) -> None:
        self.origin = origin

    def fail(self, node: yaml.Node, message: str) -> NoReturn:
        raise SelectionError(f"{self.origin}:{node.start_mark.line + 1}: {message}")

    def mapping(self, node: yaml.Node, what: str, known: tuple[str, ...]) -> dict[str, yaml.Node]:
        if not isinstance(node, yaml.MappingNode):
            self.fail(node, f"{what} must be a mapping, not {_kind(node)}")
        found: dict[str, yaml.Node] = {}
        for key_node, value_node in node.value:
            key = key_node.value if isinstance(key_node, yaml.ScalarNode) else None
            if key not in known:
                shown = key if key is not None else _kind(key_node)
                self.fail(key_node, f"unknown key {shown!r} in {what} (known: {', '.join(known)})")
            if key in found:
                self.fail(key_node, f"{key!r} is given twice in {what}")
            found[key] = value_node
        return found

    def sequence(self, node: yaml.Node | None, what: str) -> list[yaml.Node]:
        if node is None or _is_null(node):
            return []
        if not isinstance(node, yaml.SequenceNode):
            self.fail(node, f"{what} must be a list, not {_kind(node)}")
        return list(node.value)

    def string(self, node: yaml.Node, what: str) -> str:
        # Go decodes any scalar into a string field as written: `spec.max: 3.30` is "3.30".
        if _is_null(node):
            return ""
        if not isinstance(node, yaml.ScalarNode):
            self.fail(node, f"{what} must be a single value, not {_kind(node)}")
        return node.value

    def boolean(self, node: yaml.Node, what: str) -> bool:
        if _is_null(node):
            return False
        if not isinstance(node, yaml.ScalarNode) or node.tag != "tag:yaml.org,2002:bool":
            self.fail(node, f"{what} must be true or false, not {node_text(node)}")
        return yaml.constructor.SafeConstructor.bool_values[node.value.lower()]

    def strings(self, node: yaml.Node, what: str) -> list[tuple[str, yaml.Node]]:
        """A list of values (a single value counts as a list of one)."""
        items = [node] if isinstance(node, yaml.ScalarNode) else self.sequence(node, what)
        return [(self.string(item, f"each of {what}"), item) for item in items]

    def query_sets(self, node: yaml.Node | None, what: str) -> Iterator[QuerySet]:
        for entry in self.sequence(node, what):
            fields = self.mapping(entry, f"a {what} entry", tuple(QUERY_KEYS))
            values = []
            for key, value_node in fields.items():
                if QUERY_KEYS[key]:
                    if self.boolean(value_node, key):
                        values.append((key, "true"))
                elif value := self.string(value_node, key):
                    values.append((key, value))
            yield QuerySet(tuple(values))

    def pinned(self, node: yaml.Node | None) -> Iterator[PinnedPackage]:
        for entry in self.sequence(node, "packages"):
            fields = self.mapping(entry, "a packages entry", ("name", "version"))
            for key in ("name", "version"):
                if key not in fields or not self.string(fields[key], key):
                    self.fail(fields.get(key, entry), f"a pinned package needs a {key}")
            name = self.string(fields["name"], "name")
            version = self.string(fields["version"], "version")
            if not _PACKAGE_NAME.match(name):
                self.fail(fields["name"], f"not a package name: {name!r}")
            try:
                check_version(version)
            except FleetgapError as exc:
                self.fail(fields["version"], str(exc))
            yield PinnedPackage(name, version)

    def actions(self, node: yaml.Node | None) -> Iterator[Action]:
        for entry in self.sequence(node, "actions"):
            if not isinstance(entry, yaml.MappingNode) or len(entry.value) != 1:
                self.fail(entry, "each action is a mapping with one entry: print or download")
            fields = self.mapping(entry, "actions", ("print", "download"))
            if "print" in fields:
                if not _is_null(fields["print"]):
                    self.mapping(fields["print"], "the print action", ())
                yield PrintAction()
                continue
            body = self.mapping(
                fields["download"], "the download action", ("destination", "address")
            )
            destination = (
                self.string(body["destination"], "destination") if "destination" in body else ""
            )
            if not destination:
                self.fail(fields["download"], "the download action needs a destination")
            address = self.string(body["address"], "address") if "address" in body else ""
            yield DownloadAction(Path(destination), address or None)  # cwd-relative, as Go

    def artifact_sets(
        self, node: yaml.Node | None, catalogue: Catalogue | None
    ) -> Iterator[ArtifactSet]:
        entries = [node] if isinstance(node, yaml.MappingNode) else self.sequence(node, "artifacts")
        if entries and catalogue is None:
            catalogue = load_catalogue()
        for entry in entries:
            fields = self.mapping(entry, "an artifacts entry", _ARTIFACT_KEYS)
            source = self.string(fields["source"], "source") if "source" in fields else ""
            try:
                check_source(source or DEFAULT_SOURCE)
            except FleetgapError as exc:
                self.fail(fields["source"], str(exc).replace("--source", "source"))
            if "versions" not in fields:
                self.fail(entry, "an artifacts entry needs versions")
            assert catalogue is not None
            known = {
                "products": tuple(catalogue.products),
                "platforms": catalogue.platforms,
                "package_types": catalogue.package_types,
            }
            chosen: dict[str, tuple[str, ...]] = {}
            for key, allowed in known.items():
                values = self.strings(fields[key], key) if key in fields else []
                for value, value_node in values:
                    if value not in allowed:
                        noun = key.rstrip("s").replace("_", " ")
                        self.fail(
                            value_node, f"unknown {noun} {value!r} (known: {', '.join(allowed)})"
                        )
                chosen[key] = tuple(dict.fromkeys(value for value, _ in values))
            versions = []
            for version, version_node in self.strings(fields["versions"], "versions"):
                try:
                    versions.append(check_version(version))
                    catalogue.select(version, **chosen)
                except FleetgapError as exc:
                    self.fail(version_node, str(exc))
            if not versions:
                self.fail(fields["versions"], "an artifacts entry needs at least one version")
            yield ArtifactSet(source or DEFAULT_SOURCE, tuple(dict.fromkeys(versions)), **chosen)

    def keys(
        self, node: yaml.Node | None, base: Path, artifact_sources: set[str]
    ) -> Iterator[KeySpec]:
        seen: set[str] = set()
        mirrors = sorted(artifact_sources - {DEFAULT_SOURCE})
        for entry in self.sequence(node, "keys"):
            if isinstance(entry, yaml.ScalarNode):
                file, source, fingerprint = self.string(entry, "a key"), "", ""
                where = entry
                if file in KEY_SOURCES and len(mirrors) > 1:
                    self.fail(
                        entry,
                        f"the artifacts come from {len(mirrors)} sources: give {file} in the "
                        "long form, with its source (file:, source:, fingerprint:)",
                    )
                if file in KEY_SOURCES and mirrors:
                    source = key_url_beside(mirrors[0], file)
            else:
                fields = self.mapping(entry, "a keys entry", ("file", "source", "fingerprint"))
                where = fields.get("file", entry)
                file = self.string(where, "file") if "file" in fields else ""
                source = self.string(fields["source"], "source") if "source" in fields else ""
                fingerprint = (
                    self.string(fields["fingerprint"], "fingerprint")
                    if "fingerprint" in fields
                    else ""
                )
                if fingerprint:
                    fingerprint = fingerprint.replace(" ", "").upper()
                    if not _FINGERPRINT.match(fingerprint):
                        self.fail(fields["fingerprint"], "a fingerprint is 40 hexadecimal digits")
            if file not in KEY_SOURCES:
                self.fail(where, f"unknown key file {file!r} (known: {', '.join(KEY_SOURCES)})")
            if file in seen:
                self.fail(where, f"key file {file} is listed twice")
            seen.add(file)
            if source and not source.startswith(("http://", "https://")):
                source = str(base / source)
            yield KeySpec(file, source or KEY_SOURCES[file], fingerprint or ELASTIC_FINGERPRINT)

    def kit(self, node: yaml.Node, base: Path) -> KitSpec:
        fields = self.mapping(node, "kit", ("platforms", "python", "find_links"))
        chosen = {}
        for key, known in (("platforms", tuple(PLATFORM_TAGS)), ("python", PYTHONS)):
            if key not in fields:
                self.fail(node, f"kit needs {key} (known: {', '.join(known)})")
            values = self.strings(fields[key], key)
            for value, value_node in values:
                if value not in known:
                    self.fail(
                        value_node, f"unknown kit {key} {value!r} (known: {', '.join(known)})"
                    )
            if not values:
                self.fail(fields[key], f"kit needs at least one of {key}")
            chosen[key] = tuple(dict.fromkeys(value for value, _ in values))
        links = self.string(fields["find_links"], "find_links") if "find_links" in fields else ""
        return KitSpec(chosen["platforms"], chosen["python"], base / links if links else None)

    def protection_artifacts(
        self, node: yaml.Node | None, base: Path
    ) -> ProtectionArtifacts | None:
        if node is None or _is_null(node):
            return None
        fields = self.mapping(node, "protection_artifacts", _DEFEND_KEYS)
        source = self.string(fields["source"], "source") if "source" in fields else ""
        if source and not source.startswith(("http://", "https://")):
            self.fail(fields["source"], f"source must be an http:// or https:// URL: {source!r}")
        if "versions" not in fields:
            self.fail(node, "protection_artifacts needs versions (Endpoint versions)")
        versions = []
        for version, version_node in self.strings(fields["versions"], "versions"):
            try:
                versions.append(defend.check_version(version))
            except FleetgapError as exc:
                self.fail(version_node, str(exc))
        if not versions:
            self.fail(fields["versions"], "protection_artifacts needs at least one version")
        key = self.string(fields["public_key"], "public_key") if "public_key" in fields else ""
        return ProtectionArtifacts(
            source.rstrip("/") or defend.DEFAULT_SOURCE,
            tuple(dict.fromkeys(versions)),
            base / key if key else None,  # beside the selection file, as keys' paths
        )


def node_text(node: yaml.Node) -> str:
    return repr(node.value) if isinstance(node, yaml.ScalarNode) else _kind(node)


def _is_null(node: yaml.Node) -> bool:
    return isinstance(node, yaml.ScalarNode) and node.tag == "tag:yaml.org,2002:null"


def _kind(node: yaml.Node) -> str:
    if isinstance(node, yaml.MappingNode):
        return "a mapping"
    if isinstance(node, yaml.SequenceNode):
        return "a list"
    return f"the value {node.value!r}"


def _plain(node: yaml.Node) -> Any:
    """The node as JSON-ready data: numbers, booleans and null as YAML reads them, every
    other scalar (timestamps included) as its text."""
    if isinstance(node, yaml.MappingNode):
        return {
            _plain(k) if isinstance(k, yaml.ScalarNode) else str(k): _plain(v)
            for k, v in node.value
        }
    if isinstance(node, yaml.SequenceNode):
        return [_plain(item) for item in node.value]
    if node.tag.rsplit(":", 1)[-1] in ("int", "bool", "null"):
        return _CONSTRUCTOR.construct_object(node)
    if node.tag.endswith(":float"):
        value = _CONSTRUCTOR.construct_object(node)
        return value if math.isfinite(value) else node.value
    return node.value


_CONSTRUCTOR = yaml.constructor.SafeConstructor()
