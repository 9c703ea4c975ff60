"""What a selection would put in a bundle, without downloading it.

Packages are resolved through the registry's /search (as `bundle create` does); every file's
size comes from a HEAD request (key files given as local paths: from the disk). Against a
receipt, a file is new when the receipt has no file at its path: its SHA-256 is known only
once it is downloaded, so a changed file at a held path shows as held here, and `bundle
create --since` still compares by path and SHA-256. Elastic Defend's manifests are fetched
(they are small) and say each artifact's size and SHA-256: those compare by both.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from fleetgap.artifacts import defend
from fleetgap.artifacts.urls import compose_url
from fleetgap.bundle.defend_stage import fetch_manifests
from fleetgap.bundle.holding import Holding
from fleetgap.bundle.resolve import package_url, resolve_artifacts, resolve_packages
from fleetgap.bundle.selection import ProtectionArtifacts, Selection
from fleetgap.net import Net, NetError

PACKAGE, SIGNATURE, ARTIFACT, SIDECAR, KEY = "package", "signature", "artifact", "sidecar", "key"
DEFEND_MANIFEST, PROTECTION_ARTIFACT = "defend-manifest", "protection-artifact"


@dataclass(frozen=True)
class PlannedFile:
    path: str  # in the data directory: packages/…, downloads/…, keys/…
    kind: str  # package | signature | artifact | sidecar | key
    url: str  # or the local path of a key file
    size: int | None  # None when the source does not say
    new: bool  # False when the receipt already lists this path
    problem: str = ""  # why the size could not be learnt (e.g. HTTP 404)
    endpoint_versions: tuple[str, ...] = ()  # Defend: the Endpoint versions that list it

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Plan:
    files: tuple[PlannedFile, ...]

    def count(self, kind: str) -> int:
        return sum(1 for f in self.files if f.kind == kind)

    @property
    def bytes(self) -> int:
        return sum(f.size or 0 for f in self.files)

    @property
    def new_bytes(self) -> int:
        return sum(f.size or 0 for f in self.files if f.new)

    @property
    def problems(self) -> tuple[PlannedFile, ...]:
        return tuple(f for f in self.files if f.problem)


def plan(
    selection: Selection,
    net: Net,
    holding: Holding | None = None,
    parallel: int = 4,
    on_unmatched: Callable[[list[str]], None] | None = None,
) -> Plan:
    wanted: list[tuple[str, str, str]] = []  # (path, kind, url)
    for spec in selection.keys:
        wanted.append((f"keys/{spec.file}", KEY, spec.source))
    for ref in resolve_packages(selection, net, parallel, on_unmatched):
        name = ref.file_name
        wanted.append((f"packages/{name}", PACKAGE, package_url(selection.address, ref.download)))
        sig_url = package_url(selection.address, ref.signature_path)
        wanted.append((f"packages/{name}.sig", SIGNATURE, sig_url))
    for item in resolve_artifacts(selection):
        directory, name = item.artifact.path.rsplit("/", 1)
        for suffix, kind in (("", ARTIFACT), (".sha512", SIDECAR), (".asc", SIDECAR)):
            url = compose_url(item.source, directory, name + suffix)
            wanted.append((f"downloads/{item.artifact.path}{suffix}", kind, url))
    held = holding.paths if holding else frozenset()

    def measure(item: tuple[str, str, str]) -> PlannedFile:
        path, kind, url = item
        size, problem = _size(net, url)
        return PlannedFile(path, kind, url, size, path not in held, problem)

    with ThreadPoolExecutor(max_workers=max(1, parallel)) as pool:
        files = list(pool.map(measure, wanted))
    if selection.protection_artifacts is not None:
        defend_files = _defend_files(selection.protection_artifacts, net, holding)
        with ThreadPoolExecutor(max_workers=max(1, parallel)) as pool:
            files += pool.map(lambda f: _offered(net, f), defend_files)
    return Plan(tuple(files))


def _defend_files(
    spec: ProtectionArtifacts, net: Net, holding: Holding | None
) -> list[PlannedFile]:
    """Per Endpoint version its manifest, then the artifacts it lists (shared ones once, with
    every version that lists them); new unless the receipt has the same path and SHA-256."""
    fetched, refused = fetch_manifests(spec, net)
    files: dict[str, PlannedFile] = {}

    def new(path: str, sha256: str) -> bool:
        return holding is None or not holding.holds(path, sha256)

    for item in fetched:
        path = defend.manifest_path(item.version)
        url = defend.manifest_url(spec.source, item.version)
        digest = hashlib.sha256(item.zip_bytes).hexdigest()
        files[path] = PlannedFile(
            path, DEFEND_MANIFEST, url, len(item.zip_bytes), new(path, digest),
            endpoint_versions=(item.version,),
        )  # fmt: skip
        for entry in item.manifest.entries:
            held = files.get(entry.data_path)
            versions = (held.endpoint_versions if held else ()) + (item.version,)
            files[entry.data_path] = PlannedFile(
                entry.data_path, PROTECTION_ARTIFACT, defend.artifact_url(spec.source, entry),
                entry.encoded_size, new(entry.data_path, entry.encoded_sha256),
                endpoint_versions=versions,
            )  # fmt: skip
    for version, line in _refusals(spec, fetched, refused):
        path = defend.manifest_path(version)
        url = defend.manifest_url(spec.source, version)
        files[path] = PlannedFile(path, DEFEND_MANIFEST, url, None, True, line, (version,))
    return list(files.values())


def _offered(net: Net, planned: PlannedFile) -> PlannedFile:
    """A protection artifact as the source offers it: there, with the manifest's size."""
    if planned.kind != PROTECTION_ARTIFACT:
        return planned
    size, problem = _size(net, planned.url)
    if not problem and size is not None and size != planned.size:
        problem = f"the source offers {size} bytes, its Defend manifest says {planned.size}"
    return replace(planned, problem=problem) if problem else planned


def _refusals(spec: ProtectionArtifacts, fetched, refused: Sequence[str]):
    """(version, reason) for each version whose manifest could not be fetched or read."""
    done = {item.version for item in fetched}
    missing = [v for v in spec.versions if v not in done]
    return list(zip(missing, refused, strict=False))


def _size(net: Net, url: str) -> tuple[int | None, str]:
    if not url.startswith(("http://", "https://")):
        try:
            return Path(url).stat().st_size, ""
        except OSError as exc:
            return None, f"cannot read {url}: {exc.strerror}"
    try:
        return net.content_length(url), ""
    except NetError as exc:
        return None, exc.reason


def summary_lines(result: Plan) -> Sequence[str]:
    kinds = (
        (KEY, "key files"),
        (PACKAGE, "packages"),
        (ARTIFACT, "artifacts"),
        (DEFEND_MANIFEST, "Defend manifests"),
        (PROTECTION_ARTIFACT, "protection artifacts"),
    )
    lines = []
    for kind, label in kinds:
        files = [f for f in result.files if f.kind == kind]
        new = sum(1 for f in files if f.new)
        lines.append(f"{len(files)} {label} ({new} new)")
    total, new = result.bytes, result.new_bytes
    lines.append(
        f"{len(result.files)} files, {total / 1e6:.1f} MB; new against the receipt: "
        f"{sum(1 for f in result.files if f.new)} files, {new / 1e6:.1f} MB"
    )
    return lines
