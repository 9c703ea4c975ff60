"""The data directory (DESIGN.md "The data directory") and atomic placement into it.

    DATA/packages/   EPR package zips (+ .sig)
    DATA/downloads/  Elastic's artifact layout, served under /downloads/
    DATA/keys/       PGP public keys
    DATA/state/      derived or append-only state; partial downloads live in state/incoming/

Writers build a file elsewhere and `os.replace` it into place, so a reader (the server, an
agent) never sees half a file. Names a reader must never see end in `.part` or `.tmp`, or start
with a dot; `is_temporary_name` is the one test for that.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from fleetgap.errors import FleetgapError

TEMPORARY_SUFFIXES = (".part", ".tmp", ".meta")


@dataclass(frozen=True)
class DataDir:
    """One fleetgap data directory; the properties are its well-known sub-folders."""

    root: Path

    @property
    def packages(self) -> Path:
        return self.root / "packages"

    @property
    def downloads(self) -> Path:
        return self.root / "downloads"

    @property
    def keys(self) -> Path:
        return self.root / "keys"

    @property
    def state(self) -> Path:
        return self.root / "state"

    @property
    def generation(self) -> Path:
        """Rewritten last by every finished load: running servers rescan when it changes."""
        return self.state / "generation"

    @property
    def incoming(self) -> Path:
        """Where unverified downloads wait (never under downloads/, so never served)."""
        return self.state / "incoming"

    def ensure(self) -> DataDir:
        for folder in (self.packages, self.downloads, self.keys, self.state, self.incoming):
            folder.mkdir(parents=True, exist_ok=True)
        return self


def is_temporary_name(name: str) -> bool:
    """True for names that are work in progress and must never be listed or served."""
    return name.startswith(".") or name.endswith(TEMPORARY_SUFFIXES)


def inside(root: str | os.PathLike[str], path: str | os.PathLike[str]) -> bool:
    """True if `path`, symlinks followed, is `root` or lies under it (symlinks in `root`
    followed too). A symlink in DATA that leads out of it is never served or listed."""
    real_root = os.path.realpath(root)
    real = os.path.realpath(path)
    return real == real_root or real.startswith(real_root.rstrip(os.sep) + os.sep)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write `data` to `path` so that readers see either the old file or the whole new one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with _temporary_beside(path) as tmp:
        with open(tmp, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)


def bump_generation(data: DataDir, label: str) -> None:
    """Tell running servers that a load finished: they rescan once this file changes.

    Written after everything the load brought is in place, so a server that sees the new
    generation finds every file of it.
    """
    atomic_write_bytes(data.generation, f"{time.time_ns()} {label}\n".encode())


def place_file(source: Path, dest: Path) -> None:
    """Move a finished file to `dest` atomically (copying first if on another filesystem)."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.replace(source, dest)
        return
    except OSError as exc:
        if exc.errno != errno.EXDEV:
            raise
    with _temporary_beside(dest) as tmp:
        shutil.copyfile(source, tmp)
        os.replace(tmp, dest)
    source.unlink()


@contextlib.contextmanager
def exclusive(lock_file: Path, job: str) -> Iterator[None]:
    """Run `job` alone on this data directory: a second one fails at once, naming the first.

    An flock on `lock_file`: the kernel drops it when the holder exits, even by kill -9, so a
    crashed run never leaves the directory locked. On Ctrl-C the lock is kept until the
    process is gone, since download threads may still be writing their partial files.
    """
    lock_file.parent.mkdir(parents=True, exist_ok=True)
    handle = open(lock_file, "a+")  # noqa: SIM115 (held past the block on Ctrl-C)
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip() or "another process"
        handle.close()
        raise FleetgapError(
            f"{job} is already running on {lock_file.parent.parent} ({holder}); "
            "wait for it to finish"
        ) from None
    handle.seek(0)
    handle.truncate()
    handle.write(f"pid {os.getpid()}")
    handle.flush()
    interrupted = False
    try:
        yield
    except KeyboardInterrupt:
        interrupted = True
        _HELD_UNTIL_EXIT.append(handle)
        raise
    finally:
        if not interrupted:
            handle.truncate(0)
            fcntl.flock(handle, fcntl.LOCK_UN)
            handle.close()


_HELD_UNTIL_EXIT: list = []


def prune_stale(folder: Path, older_than_seconds: float) -> int:
    """Remove work files (`.part`, `.meta`, `.tmp`) under `folder` untouched for that long.

    A `.part` and its `.part.meta` go together: the age is that of the newer of the two
    (a resumed download touches only the `.part`).
    """
    cutoff = time.time() - older_than_seconds
    removed = 0
    for path in folder.rglob("*") if folder.is_dir() else ():
        try:
            if path.is_file() and is_temporary_name(path.name) and _last_touched(path) < cutoff:
                path.unlink()
                removed += 1
        except OSError:  # gone meanwhile, or not ours to remove: pruning is best effort
            continue
    return removed


def _last_touched(path: Path) -> float:
    name = path.name
    partner = name[: -len(".meta")] if name.endswith(".part.meta") else name + ".meta"
    times = [path.stat().st_mtime]
    with contextlib.suppress(OSError):
        times.append(path.with_name(partner).stat().st_mtime)
    return max(times)


@contextlib.contextmanager
def _temporary_beside(path: Path) -> Iterator[Path]:
    """A hidden temporary name in the destination's folder, removed if not renamed away."""
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
