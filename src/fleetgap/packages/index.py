"""The in-memory package index: every package found in the package paths, in index order.

spec: epr-api §5.1, §5.4, §4.7. Two indexers scan the same paths: the zip indexer (every
`*.zip` at any depth) first, then the directory indexer (`<path>/<name>/<version>/`).
Within an indexer the earlier path wins for the same name and version; across indexers
the zip wins. A package that cannot be served is refused with one warning naming the file
and the reason; every other package is still served.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import logging
import marshal
import multiprocessing
import os
from collections.abc import Callable, Iterable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path

from fleetgap.packages.index_cache import IndexCache, fingerprint
from fleetgap.packages.loader import LoadedModel, package_from_model, read_model
from fleetgap.packages.model import Package, PackageError
from fleetgap.packages.render import render_model, render_package
from fleetgap.semver import SemverError, Version
from fleetgap.store import inside

log = logging.getLogger("fleetgap.packages")

PROCESS_POOL_MIN = 200  # below this, starting worker processes costs more than it saves
SignatureCheck = Callable[[Path, Path], None]  # (package path, .sig path); raises on failure


@dataclass(frozen=True)
class LoadOptions:
    paths: tuple[Path, ...]
    validate: bool = True
    require_signatures: bool = True
    verify_keys: tuple[Path, ...] = ()
    workers: int = 1
    cache: Path | None = None  # a persisted index (sqlite) to reuse unchanged packages


@dataclass(frozen=True)
class Refusal:
    path: Path
    reason: str


@dataclass(frozen=True)
class PackageIndex:
    """Two indexer lists, each in index order; see `packages.search` for the queries."""

    zip_packages: tuple[Package, ...] = ()
    dir_packages: tuple[Package, ...] = ()
    refused: tuple[Refusal, ...] = ()
    by_key: dict[tuple[str, str], Package] = field(default_factory=dict, compare=False)

    @property
    def indexers(self) -> tuple[tuple[Package, ...], ...]:
        return (self.zip_packages, self.dir_packages)

    def __len__(self) -> int:
        return len(self.by_key)

    def get(self, name: str, version: str) -> Package | None:
        return self.by_key.get((name, version))


def load_index(options: LoadOptions) -> PackageIndex:
    """Scan the package paths (zip indexer first, then directories)."""
    index = _build(options)
    gc.collect()
    release_freed_memory()
    return index


def current_cache_size(options: LoadOptions) -> int | None:
    """The package count of the persisted index if it is current for every package the
    paths hold now (then loading it again changes nothing); None when it is not, or when
    signatures are verified on every load."""
    if options.cache is None or options.verify_keys:
        return None
    candidates = [
        path
        for finder in (find_zip_packages, find_directory_packages)
        for base in options.paths
        for path in finder(base)
    ]
    return IndexCache(options.cache, options.validate).current_size(candidates)


def _build(options: LoadOptions) -> PackageIndex:
    check = _signature_check(options)
    cache = IndexCache(options.cache, options.validate) if options.cache else None
    refused: list[Refusal] = []
    read: dict[int, tuple[Path, str, LoadedModel]] = {}  # by id() of the package
    lists = []
    for finder in (find_zip_packages, find_directory_packages):
        found = [(base, p) for base in options.paths for p in finder(base)]
        packages = _load_all(found, options, check, refused, cache, read)
        lists.append(_propagate_deprecation(_first_wins(packages)))
    zip_packages, dir_packages = lists
    renderings = {}
    for package in (*zip_packages, *dir_packages):
        renderings[id(package)] = render_package(package, read[id(package)][2].rendering)
        package.pack()
    if cache is not None:
        cache.store((*entry, renderings.get(key)) for key, entry in read.items())
    by_key: dict[tuple[str, str], Package] = {}
    for package in (*zip_packages, *dir_packages):
        by_key.setdefault(package.key, package)
    if not options.paths or all(not Path(p).is_dir() for p in options.paths):
        log.warning("no package path exists yet; serving an empty registry")
    return PackageIndex(tuple(zip_packages), tuple(dir_packages), tuple(refused), by_key)


def release_freed_memory() -> None:
    """Hand the memory freed by loading back to the system (glibc keeps it otherwise:
    loading frees about as much as the index keeps, in pieces malloc does not return)."""
    with contextlib.suppress(OSError, AttributeError):  # not glibc: nothing to do
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def find_zip_packages(base: Path) -> list[Path]:
    """Every `*.zip` below `base`, walked in lexical order; a symlink that leads out of
    `base` is not followed."""
    found: list[Path] = []
    for directory, dirnames, filenames in os.walk(base):
        dirnames.sort()
        found.extend(
            Path(os.path.join(directory, name))
            for name in sorted(filenames)
            if name.endswith(".zip") and inside(base, os.path.join(directory, name))
        )
    return found


def find_directory_packages(base: Path) -> list[Path]:
    """`<base>/<name>/<version>/` where `<version>` is a strict semver."""
    found: list[Path] = []
    for name_dir in _sorted_dirs(base):
        for version_dir in _sorted_dirs(name_dir):
            try:
                Version.parse_strict(version_dir.name)
            except SemverError:
                log.warning("ignoring unexpected directory %s", version_dir)
                continue
            found.append(version_dir)
    return found


def _sorted_dirs(path: Path) -> list[Path]:
    try:
        entries = sorted(os.scandir(path), key=lambda e: e.name)
    except OSError:
        return []
    return [Path(e.path) for e in entries if e.is_dir() and inside(path, e.path)]


def _load_all(
    found: list[tuple[Path, Path]],
    options: LoadOptions,
    check: SignatureCheck | None,
    refused: list[Refusal],
    cache: IndexCache | None,
    read: dict[int, tuple[Path, str, LoadedModel]],
) -> list[Package]:
    """Read every package (unless the cache has it unchanged); in worker processes when
    there are many, since YAML parsing is CPU-bound. `found`: (package path, package)."""
    roots = [root for root, _ in found]
    paths = [path for _, path in found]
    identities = [fingerprint(path) if cache else "" for path in paths]
    models: list[LoadedModel | Refusal | None] = [
        cache.lookup(path, identity) if cache else None
        for path, identity in zip(paths, identities, strict=True)
    ]
    missing = [i for i, model in enumerate(models) if model is None]
    for i, model in zip(missing, _read_many([paths[i] for i in missing], options), strict=True):
        models[i] = model
    packages = []
    for root, path, identity, loaded in zip(roots, paths, identities, models, strict=True):
        try:
            if isinstance(loaded, Refusal):
                raise PackageError(loaded.reason)
            for warning in loaded.warnings:
                log.warning("%s", warning)
            package = package_from_model(path, loaded)
            _check_inside(root, package)
            _check_signature(package, options, check)
        except PackageError as exc:
            log.warning("package refused: %s: %s", path, exc)
            refused.append(Refusal(path, str(exc)))
            continue
        packages.append(package)
        read[id(package)] = (path, identity, loaded)
    return packages


def _read_many(paths: list[Path], options: LoadOptions) -> list[LoadedModel | Refusal]:
    if options.workers > 1 and len(paths) >= PROCESS_POOL_MIN:
        # spawn, not fork: the watcher reloads from a thread of a running server
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(options.workers, mp_context=context) as pool:
            chunk = max(1, len(paths) // (options.workers * 8))
            flags = [options.validate] * len(paths)
            return list(pool.map(_read_one, paths, flags, chunksize=chunk))
    return [_read_one(path, options.validate) for path in paths]


def _read_one(path: Path, validate: bool) -> LoadedModel | Refusal:
    """Read, render and pack one package: only bytes and a small summary come back, so
    the main process never holds the decoded manifests (in a worker process, the
    rendering is done in parallel too)."""
    try:
        loaded = read_model(path, validate=validate)
    except PackageError as exc:
        return Refusal(path, str(exc))
    model = loaded.model
    assert isinstance(model, dict)
    return replace(loaded, model=marshal.dumps(model), rendering=render_model(model))


def _check_inside(root: Path, package: Package) -> None:
    if package.signed and not inside(root, f"{package.base_path}.sig"):
        raise PackageError(f"signature file {package.base_path}.sig leads outside {root}")


def _check_signature(package: Package, options: LoadOptions, check: SignatureCheck | None) -> None:
    if not package.signed:
        if options.require_signatures or check is not None:
            raise PackageError(
                f"package {package.name}-{package.version} is missing a required signature file"
            )
        return
    if check is not None:
        check(package.base_path, Path(f"{package.base_path}.sig"))


def _signature_check(options: LoadOptions) -> SignatureCheck | None:
    if not options.verify_keys:
        return None
    from fleetgap.packages.signatures import package_signature_check

    return package_signature_check(options.verify_keys)


def _first_wins(packages: Iterable[Package]) -> list[Package]:
    seen: set[tuple[str, str]] = set()
    result = []
    for package in packages:
        if package.key in seen:
            continue
        seen.add(package.key)
        result.append(package)
    return result


def _propagate_deprecation(packages: list[Package]) -> list[Package]:
    """The notice of the newest deprecated version applies to every version (spec §5.3)."""
    newest: dict[str, Package] = {}
    for package in packages:
        if package.own_deprecated is None:
            continue
        current = newest.get(package.name)
        if current is None or package.semver.compare(current.semver) > 0:
            newest[package.name] = package
    for package in packages:
        source = newest.get(package.name)
        package.deprecated = source.own_deprecated if source else package.own_deprecated
    return packages
