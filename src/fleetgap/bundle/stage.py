"""Stage a selection into the cache: a fleetgap data directory holding exactly what crosses.

    cache/keys/       the selection's key files, each checked against its pinned fingerprint
    cache/packages/   <name>-<version>.zip + .zip.sig, the zip verified by its .sig
    cache/downloads/  artifacts + .sha512 + .asc, verified as the agent verifies them;
                      Elastic Defend's manifests and protection artifacts (defend_stage.py)
    cache/kit/        fleetgap's wheels (the selection's `kit:`), fetched and checked by pip

Nothing unverified is ever placed there: downloads wait in cache/state/incoming/ (resumed
on the next run) and are moved in only after their signature verifies. Files already in
the cache are verified again and reused. Every Elastic signature is checked with `trust`:
the keys given (`--key`), or else Elastic's key, pinned by fingerprint.

A file that does not verify is left out and reported in `Staged.refused`; `bundle create`
then writes no bundle at all (a bundle silently lacking a package is worse than none), and
everything that did verify stays in the cache for the next run.
"""

from __future__ import annotations

import hashlib
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from fleetgap.artifacts.mirror import FAILED, MISSING, ProgressFactory, mirror
from fleetgap.bundle.defend_stage import stage_defend
from fleetgap.bundle.kit import KitTarget, download_wheels
from fleetgap.bundle.manifest import FileEntry
from fleetgap.bundle.packages import Fetched, FileProgress, PackageFetcher, Target
from fleetgap.bundle.resolve import (
    ArtifactRef,
    PackageRef,
    resolve_artifacts,
    resolve_packages,
)
from fleetgap.bundle.selection import KeySpec, KitSpec, Selection
from fleetgap.errors import FleetgapError
from fleetgap.net import Net, NetError, NetOptions
from fleetgap.pgp.artifact_check import check_artifact
from fleetgap.pgp.elastic_key import ELASTIC_KEY_FILE, ELASTIC_KEY_URL, check_elastic_key
from fleetgap.pgp.keys import ELASTIC_FINGERPRINT, KeyFileError, PublicKey, parse_public_key
from fleetgap.store import DataDir, atomic_write_bytes, exclusive, place_file

OPENPGP = "openpgp-detached"
SHA512_OPENPGP = "sha512+openpgp-detached"
SIDECAR = "sidecar"
PINNED = "pinned-fingerprint"
PIP = "pip"
_SIG_LIMIT = 1 << 20


@dataclass(frozen=True)
class Staged:
    entries: tuple[FileEntry, ...]  # keys, then packages, then artifacts; sorted by path within
    refused: tuple[str, ...]  # one line per package or artifact left out, with the reason
    packages: int  # how many were resolved
    artifacts: int
    keys: int
    trusted: tuple[str, ...]  # fingerprints of the keys that verified the files
    protection_artifacts: int = 0  # Defend manifests and the artifacts they list


def stage(
    selection: Selection,
    cache: DataDir,
    *,
    trust: Sequence[PublicKey] = (),
    net_options: NetOptions | None = None,
    parallel: int = 4,
    progress: FileProgress | None = None,
    on_unmatched: Callable[[list[str]], None] | None = None,
) -> Staged:
    """Resolve the selection, fetch what the cache lacks, verify everything, list it."""
    cache.ensure()
    options = net_options or NetOptions(connections=max(parallel, 8))
    with exclusive(cache.state / "stage.lock", "fleetgap bundle create"), Net(options) as net:
        key_entries, carried = _stage_keys(selection.keys, cache, net)
        signed = selection.matrix or selection.queries or selection.packages or selection.artifacts
        # a selection of keys and the kit only has no Elastic signature to check
        trusted = tuple(trust) or (_elastic_trust(carried, cache, net) if signed else ())
        refs = resolve_packages(selection, net, parallel, on_unmatched)
        artifacts = resolve_artifacts(selection)
        fetcher = PackageFetcher(
            net, selection.address, trusted, cache.incoming / "packages", progress
        )
        fetched = fetcher.fetch_all([package_target(cache, ref) for ref in refs], parallel)
    package_entries = [
        entry for f in fetched if f.key is not None for entry in _package_entries(cache, f)
    ]
    refused = [f.problem for f in fetched if f.key is None]
    artifact_entries, artifact_refused = _stage_artifacts(
        artifacts, cache, trusted, options, parallel, progress
    )
    defend_entries: list[FileEntry] = []
    if selection.protection_artifacts is not None:
        lock = exclusive(cache.state / "defend.lock", "fleetgap bundle create")
        with lock, Net(options) as net:
            defend_entries, defend_refused = stage_defend(
                selection.protection_artifacts, cache, net, parallel=parallel, progress=progress
            )
        refused += defend_refused
    kit_entries = _stage_kit(selection.kit, cache, options) if selection.kit else []
    return Staged(
        entries=tuple(
            key_entries + package_entries + artifact_entries + defend_entries + kit_entries
        ),
        refused=tuple(refused + artifact_refused),
        protection_artifacts=len(defend_entries),
        packages=len(refs),
        artifacts=len(artifacts),
        keys=len(key_entries),
        trusted=tuple(key.fingerprint for key in trusted),
    )


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def fetch_key(spec: KeySpec, net: Net) -> tuple[bytes, PublicKey]:
    """The key file's bytes and key, if it is exactly the key `spec` pins, else an error."""
    try:
        body = net.get_bytes(spec.source) if spec.is_url else Path(spec.source).read_bytes()
    except OSError as exc:
        raise FleetgapError(f"key {spec.file}: cannot read {spec.source}: {exc.strerror}") from None
    except NetError as exc:
        raise FleetgapError(f"key {spec.file}: {exc}") from None
    try:
        key = parse_public_key(body)
    except KeyFileError as exc:
        raise FleetgapError(f"key {spec.file} from {spec.source}: {exc}") from None
    if key.fingerprint != spec.fingerprint or key.others:
        raise FleetgapError(
            f"key {spec.file} from {spec.source} has fingerprint {key.fingerprint}, expected "
            f"{spec.fingerprint}" + (" and nothing else" if key.others else "")
        )
    return body, key


def _stage_keys(
    specs: Sequence[KeySpec], cache: DataDir, net: Net
) -> tuple[list[FileEntry], list[PublicKey]]:
    entries, keys = [], []
    for spec in specs:
        body, key = fetch_key(spec, net)
        atomic_write_bytes(cache.keys / spec.file, body)
        entries.append(
            FileEntry(
                f"keys/{spec.file}",
                len(body),
                hashlib.sha256(body).hexdigest(),
                PINNED,
                key.fingerprint,
            )
        )
        keys.append(key)
    return entries, keys


def _elastic_trust(carried: Sequence[PublicKey], cache: DataDir, net: Net) -> tuple[PublicKey]:
    """Elastic's key: one the selection carries, else the cache's, else fetched; always
    checked against the pinned fingerprint."""
    for key in carried:
        if key.fingerprint == ELASTIC_FINGERPRINT:
            return (key,)
    cached = cache.keys / ELASTIC_KEY_FILE
    if cached.is_file():
        return (check_elastic_key(cached.read_bytes(), origin=str(cached)),)
    return (check_elastic_key(net.get_bytes(ELASTIC_KEY_URL), origin=ELASTIC_KEY_URL),)


def package_target(cache: DataDir, ref: PackageRef) -> Target:
    """Where a package lives in a data directory: packages/<name>-<version>.zip(.sig)."""
    zip_path = cache.packages / ref.file_name
    return Target(ref, zip_path, zip_path.with_name(zip_path.name + ".sig"))


def _package_entries(cache: DataDir, fetched: Fetched) -> list[FileEntry]:
    assert fetched.key is not None
    fingerprint = fetched.key.fingerprint
    return [
        _entry(cache, fetched.target.zip_path, OPENPGP, fingerprint),
        _entry(cache, fetched.target.sig_path, SIDECAR, fingerprint),
    ]


def _stage_artifacts(
    artifacts: Sequence[ArtifactRef],
    cache: DataDir,
    trusted: Sequence[PublicKey],
    options: NetOptions,
    parallel: int,
    progress: FileProgress | None,
) -> tuple[list[FileEntry], list[str]]:
    entries: list[FileEntry] = []
    refused: list[str] = []
    by_source: dict[str, list] = {}
    for ref in artifacts:
        by_source.setdefault(ref.source, []).append(ref.artifact)
    bars: ProgressFactory | None = (lambda a: progress(a.name)) if progress else None  # type: ignore[assignment,return-value]
    for source, group in by_source.items():
        report = mirror(
            group, cache, trusted, source=source, net_options=options, parallel=parallel,
            progress=bars,
        )  # fmt: skip
        for outcome in report.outcomes:
            path = outcome.artifact.path
            if outcome.status in (FAILED, MISSING):
                refused.append(f"artifact {path}: {outcome.reason}")
                continue
            binary = cache.downloads / path
            try:  # verified again here: a file already in the cache is trusted only now
                check = check_artifact(binary, [(str(k), k) for k in trusted])
            except FleetgapError as exc:
                refused.append(f"artifact {path}: {_first_line(exc)}")
                continue
            fingerprint = check.key.fingerprint
            entries.append(_entry(cache, binary, SHA512_OPENPGP, fingerprint))
            entries.append(_entry(cache, Path(f"{binary}.sha512"), SIDECAR, None))
            entries.append(_entry(cache, Path(f"{binary}.asc"), SIDECAR, fingerprint))
    return entries, refused


def _stage_kit(kit: KitSpec, cache: DataDir, options: NetOptions) -> list[FileEntry]:
    """pip downloads into a fresh folder; exactly those wheels go in (older ones left in
    cache/kit/ by earlier runs are not carried)."""
    target = KitTarget(kit.platforms, kit.pythons)
    with tempfile.TemporaryDirectory(prefix="kit-", dir=cache.incoming) as work:
        names = download_wheels(
            Path(work), target, find_links=kit.find_links, index=kit.find_links is None,
            net_options=options,
        )  # fmt: skip
        for name in names:
            place_file(Path(work) / name, cache.kit / name)
    return [_entry(cache, cache.kit / name, PIP, None) for name in names]


def _entry(cache: DataDir, path: Path, verified_by: str, fingerprint: str | None) -> FileEntry:
    relative = path.relative_to(cache.root).as_posix()
    return FileEntry(relative, path.stat().st_size, file_sha256(path), verified_by, fingerprint)


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__
