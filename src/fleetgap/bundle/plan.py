"""What a selection would put in a bundle, without downloading it.

Packages are resolved through the registry's /search (as `bundle create` does); every file's
size comes from a HEAD request (key files given as local paths: from the disk). Against a
receipt, a file is new when the receipt has no file at its path: its SHA-256 is known only
once it is downloaded, so a changed file at a held path shows as held here, and `bundle
create --since` still compares by path and SHA-256.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

from fleetgap.artifacts.urls import compose_url
from fleetgap.bundle.holding import Holding
from fleetgap.bundle.resolve import package_url, resolve_artifacts, resolve_packages
from fleetgap.bundle.selection import Selection
from fleetgap.net import Net, NetError

PACKAGE, SIGNATURE, ARTIFACT, SIDECAR, KEY = "package", "signature", "artifact", "sidecar", "key"


@dataclass(frozen=True)
class PlannedFile:
    path: str  # in the data directory: packages/…, downloads/…, keys/…
    kind: str  # package | signature | artifact | sidecar | key
    url: str  # or the local path of a key file
    size: int | None  # None when the source does not say
    new: bool  # False when the receipt already lists this path
    problem: str = ""  # why the size could not be learnt (e.g. HTTP 404)

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
        return Plan(tuple(pool.map(measure, wanted)))


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
