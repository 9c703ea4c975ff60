"""Stage Elastic Defend's protection artifacts into the cache, each checked against the
manifest entry that lists it (artifacts/defend.py), before anything is placed.

Per Endpoint version: the manifest zip is fetched (and its `manifest.sig` checked when the
selection gives `public_key`), then every artifact it lists that the cache does not already
hold with the right size and SHA-256 is downloaded into cache/state/incoming/defend/, checked
(encoded size and SHA-256, then decoded size and SHA-256) and moved in. An artifact shared by
several versions is fetched and stored once. The manifest zip is written last, and only when
every artifact it lists is in place: the cache never holds a manifest that promises more
than it has.
"""

from __future__ import annotations

import hashlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from fleetgap.artifacts import defend
from fleetgap.bundle.manifest import FileEntry
from fleetgap.bundle.packages import FileProgress
from fleetgap.bundle.selection import ProtectionArtifacts
from fleetgap.errors import FleetgapError
from fleetgap.net import Net, NetError, Progress, discard_part
from fleetgap.store import DataDir, atomic_write_bytes, place_file

MANIFEST = "defend-manifest"
ENTRY = "defend-manifest-entry"


@dataclass(frozen=True)
class Fetched:
    version: str
    manifest: defend.DefendManifest
    zip_bytes: bytes


def fetch_manifests(spec: ProtectionArtifacts, net: Net) -> tuple[list[Fetched], list[str]]:
    """Each version's manifest zip, parsed and (with `public_key`) its signature checked."""
    key = _read_key(spec.public_key) if spec.public_key else None
    found, refused = [], []
    for version in spec.versions:
        url = defend.manifest_url(spec.source, version)
        origin = f"Defend manifest for Endpoint {version}"
        try:
            data = net.get_bytes(url, limit=defend.MAX_MANIFEST_ZIP)
            manifest = defend.parse_manifest_zip(data, origin)
            if key is not None:
                defend.verify_signature(manifest, key, origin)
        except NetError as exc:
            refused.append(f"{origin}: {exc}")
            continue
        except FleetgapError as exc:
            refused.append(str(exc))
            continue
        found.append(Fetched(version, manifest, data))
    return found, refused


def stage_defend(
    spec: ProtectionArtifacts,
    cache: DataDir,
    net: Net,
    *,
    parallel: int = 4,
    progress: FileProgress | None = None,
) -> tuple[list[FileEntry], list[str]]:
    """FileEntries for every manifest zip and artifact that verified; refusals, one line each."""
    fetched, refused = fetch_manifests(spec, net)
    wanted: dict[str, tuple[defend.DefendEntry, str]] = {}  # data path → (entry, manifest path)
    for item in fetched:
        for entry in item.manifest.entries:
            held = wanted.get(entry.data_path)
            if held is None:
                wanted[entry.data_path] = (entry, defend.manifest_path(item.version))
            elif held[0].encoded_sha256 != entry.encoded_sha256:
                refused.append(
                    f"protection artifact {entry.relative_url}: the manifests of {held[1]} and "
                    f"{defend.manifest_path(item.version)} give it different SHA-256s"
                )

    def one(item: tuple[defend.DefendEntry, str]) -> str:
        entry, _ = item
        try:
            _stage_artifact(entry, spec.source, cache, net, progress)
            return ""
        except NetError as exc:
            return f"protection artifact {entry.name} ({entry.relative_url}): {exc}"
        except FleetgapError as exc:
            return str(exc)
        except OSError as exc:
            return f"protection artifact {entry.name}: {exc.strerror or exc}: {exc.filename}"

    with ThreadPoolExecutor(max_workers=max(1, parallel)) as pool:
        problems = dict(zip(wanted, pool.map(one, wanted.values()), strict=True))
    refused.extend(problem for problem in problems.values() if problem)
    entries: list[FileEntry] = []
    for item in fetched:
        path = defend.manifest_path(item.version)
        if any(problems.get(e.data_path, "x") for e in item.manifest.entries):
            continue  # its refusal is already listed; its manifest stays out of the cache
        atomic_write_bytes(cache.root / path, item.zip_bytes)
        entries.append(_manifest_entry(path, item.zip_bytes))
    listed = {e.path for e in entries}
    for data_path, (entry, vouching) in sorted(wanted.items()):
        if vouching in listed and not problems[data_path]:
            entries.append(
                FileEntry(
                    data_path, entry.encoded_size, entry.encoded_sha256, ENTRY, None,
                    vouched_by=vouching,
                )
            )  # fmt: skip
    return entries, refused


def _stage_artifact(
    entry: defend.DefendEntry,
    source: str,
    cache: DataDir,
    net: Net,
    progress: FileProgress | None,
) -> None:
    target = cache.root / entry.data_path
    origin = f"protection artifact {entry.name} ({entry.relative_url})"
    if target.is_file() or target.is_symlink():
        try:
            defend.check_artifact_file(target, entry, origin)
            return  # already in the cache, as the manifest says
        except defend.DefendError:
            if entry.data_path not in _cached_defend_paths(cache):
                raise defend.DefendError(
                    f"{origin}: the cache holds another file there (an agent binary, a "
                    "sidecar...) that no Defend manifest put there; refused, never replaced"
                ) from None
            # else an older or damaged copy of a Defend artifact: fetched again
    part = cache.incoming / "defend" / f"{entry.encoded_sha256}.part"
    bar = _Capped(progress(entry.name) if progress else None, entry.encoded_size, origin)
    try:
        net.download(defend.artifact_url(source, entry), part, bar, limit=entry.encoded_size)
        defend.check_artifact_file(part, entry, origin)
    except BaseException:
        discard_part(part)
        raise
    place_file(part, target)
    discard_part(part)


def _cached_defend_paths(cache: DataDir) -> set[str]:
    """Data paths the Defend manifests in the cache list: a manifest is written to the cache
    only once every artifact it lists is there, so these are files Defend staging placed."""
    folder = cache.root / defend.MANIFEST_FOLDER
    paths: set[str] = set()
    for path in sorted(folder.glob("artifacts-*.zip")) if folder.is_dir() else ():
        try:
            paths.update(defend.read_manifest_zip(path).by_path())
        except defend.DefendError:
            continue
    return paths


class _Capped:
    """Progress that stops a download once it passes the size its manifest entry gives."""

    def __init__(self, inner: Progress | None, limit: int, origin: str) -> None:
        self.inner, self.limit, self.origin, self.done = inner, limit, origin, 0

    def start(self, total: int | None, done: int) -> None:
        self.done = done
        if total is not None and total > self.limit:
            raise defend.DefendError(
                f"{self.origin}: the source offers {total} bytes, the manifest entry says "
                f"{self.limit}"
            )
        if self.inner:
            self.inner.start(total, done)

    def advance(self, size: int) -> None:
        self.done += size
        if self.done > self.limit:
            raise defend.DefendError(
                f"{self.origin}: more than the {self.limit} bytes its manifest entry says"
            )
        if self.inner:
            self.inner.advance(size)


def _manifest_entry(path: str, data: bytes) -> FileEntry:
    return FileEntry(path, len(data), hashlib.sha256(data).hexdigest(), MANIFEST, None)


def _read_key(path: Path) -> bytes:
    try:
        return path.read_bytes()[: 1 << 16]
    except OSError as exc:
        raise FleetgapError(f"cannot read Defend public key {path}: {exc.strerror}") from None
