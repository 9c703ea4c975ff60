"""The data directory (DESIGN.md "The data directory") and atomic placement into it.

    DATA/packages/   EPR package zips (+ .sig)
    DATA/downloads/  Elastic's artifact layout, served under /downloads/
    DATA/keys/       PGP public keys
    DATA/kit/        fleetgap's own wheels, served as a pip index at /fleetgap/simple/
    DATA/state/      derived or append-only state; partial downloads live in state/incoming/

Writers build a file elsewhere and `os.replace` it into place, so a reader (the server, an
agent) never sees half a file. Names a reader must never see end in `.part` or `.tmp`, or start
with a dot; `is_temporary_name` is the one test for that.
"""

from __future__ import annotations

import atexit
import contextlib
import dataclasses
import errno
import fcntl
import json
import os
import secrets
import shutil
import socket
import tempfile
import threading
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
    def kit(self) -> Path:
        """fleetgap's own wheels (a selection's `kit:`), served at /fleetgap/simple/."""
        return self.root / "kit"

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

    @property
    def load_lock(self) -> Path:
        """The lock (`exclusive`) of every job that publishes into packages/, downloads/ or
        keys/: bundle load, artifacts mirror, keys publish, keys fetch-elastic."""
        return self.state / "load.lock"

    def ensure(self) -> DataDir:
        for folder in (self.packages, self.downloads, self.keys, self.state, self.incoming):
            folder.mkdir(parents=True, exist_ok=True)
        return self


# File systems that other hosts may mount too (mountinfo's type field).
NETWORK_FILESYSTEMS = frozenset(
    {
        "nfs", "nfs4", "cifs", "smb3", "smbfs", "ceph", "glusterfs", "lustre", "gpfs",
        "beegfs", "9p", "afs", "ocfs2", "gfs2", "fuse.glusterfs", "fuse.sshfs",
        "fuse.cephfs", "fuse.s3fs", "fuse.juicefs", "fuse.rclone",
    }
)  # fmt: skip


def network_filesystem(path: Path, mountinfo: str | None = None) -> str | None:
    """The type of the network file system `path` is on (`nfs4`, `cifs`, ...), else None.

    Read from /proc/self/mountinfo (or `mountinfo`, its text): the longest mount point that
    holds `path`."""
    if mountinfo is None:
        try:
            mountinfo = Path("/proc/self/mountinfo").read_text()
        except OSError:
            return None
    target = os.path.realpath(path)
    best, kind = "", None
    for line in mountinfo.splitlines():
        left, _, right = line.partition(" - ")
        fields, after = left.split(), right.split()
        if len(fields) < 5 or not after:
            continue
        point = _unescape_mount(fields[4])
        inside = target == point or target.startswith(point.rstrip("/") + "/")
        if inside and len(point) >= len(best):
            best, kind = point, after[0]
    return kind if kind in NETWORK_FILESYSTEMS else None


def _unescape_mount(text: str) -> str:
    """mountinfo writes space, tab, newline and backslash in octal (\\040 ...)."""
    for code, char in (("\\040", " "), ("\\011", "\t"), ("\\012", "\n"), ("\\134", "\\")):
        text = text.replace(code, char)
    return text


def is_temporary_name(name: str) -> bool:
    """True for names that are work in progress and must never be listed or served."""
    return name.startswith(".") or name.endswith(TEMPORARY_SUFFIXES)


def inside(root: str | os.PathLike[str], path: str | os.PathLike[str]) -> bool:
    """True if `path`, symlinks followed, is `root` or lies under it (symlinks in `root`
    followed too). A symlink in DATA that leads out of it is never served or listed."""
    return resolved_under(os.path.realpath(root), os.path.realpath(path))


def resolved_under(real_root: str, real: str) -> bool:
    """`inside` for paths already resolved (`os.path.realpath`): a string comparison."""
    return real == real_root or real.startswith(real_root.rstrip(os.sep) + os.sep)


def atomic_write_bytes(path: Path, data: bytes, mode: int | None = None) -> None:
    """Write `data` to `path` so that readers see either the old file or the whole new one.
    The file is private to its owner (0600) unless `mode` says otherwise."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with _temporary_beside(path) as tmp:
        with open(tmp, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        if mode is not None:
            os.chmod(tmp, mode)
        os.replace(tmp, path)


def bump_generation(data: DataDir, label: str) -> None:
    """Tell running servers that a load finished: they rescan once this file changes.

    Written after everything the load brought is in place, so a server that sees the new
    generation finds every file of it.
    """
    # readable by servers running as another user than the load (they read its content)
    atomic_write_bytes(data.generation, f"{time.time_ns()} {label}\n".encode(), mode=0o644)


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
def exclusive(lock_file: Path, job: str) -> Iterator[Lease]:
    """Run `job` alone on this data directory, from any host sharing it: a second one fails at
    once, naming the first (its job, host, pid and start time).

    Two layers, each covering the other's gap (docs/architecture.md "Replicas"):
    - an flock on `lock_file`: the kernel drops it when the holder exits, even by kill -9;
      it spans hosts only where the shared file system forwards locks (NFSv4, CephFS);
    - an owner record beside it (`<lock_file>.owner`), created with O_EXCL, which every file
      system shared between hosts makes atomic, and which names the holder. The holder
      touches it every HEARTBEAT_SECONDS; see `_is_stale` for when it may be taken over.

    On Ctrl-C both are kept until the process is gone, since download threads may still be
    writing their partial files.
    """
    lock_file.parent.mkdir(parents=True, exist_ok=True)
    handle = open(lock_file, "a+")  # noqa: SIM115 (held past the block on Ctrl-C)
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        legacy = handle.read().strip()  # what an older fleetgap wrote: "pid N"
        handle.close()
        raise _refusal(lock_file, job, _read_owner(_owner_path(lock_file)), legacy) from None
    try:
        lease = Lease.take(_owner_path(lock_file), job)
    except BaseException:
        fcntl.flock(handle, fcntl.LOCK_UN)
        handle.close()
        raise
    handle.seek(0)
    handle.truncate()
    handle.write(f"pid {os.getpid()}")  # what an older fleetgap on this host shows
    handle.flush()
    interrupted = False
    try:
        yield lease
    except KeyboardInterrupt:
        interrupted = True
        _HELD_UNTIL_EXIT.append(handle)
        atexit.register(lease.release)
        raise
    finally:
        if not interrupted:
            lease.release()
            handle.truncate(0)
            fcntl.flock(handle, fcntl.LOCK_UN)
            handle.close()


_HELD_UNTIL_EXIT: list = []

HEARTBEAT_SECONDS = 5.0  # the holder touches its owner record this often...
STALE_SECONDS = 30.0  # ...and a record untouched this long, by the file server's clock, is stale
_UNREADABLE_GRACE_SECONDS = 10.0  # an owner record without its content yet: being written


@dataclass(frozen=True)
class Owner:
    """Who holds a lock: written into the owner record as JSON."""

    job: str
    host: str
    pid: int
    since: str = ""  # UTC, the holder's clock: for people, never compared
    token: str = ""  # random: tells this holding apart from any other
    boot: str = ""  # with `pid_ns` and `host`: the same machine and pid namespace as ours?
    pid_ns: str = ""
    started: str = ""  # the process's start time (/proc/PID/stat): a reused pid is not alive

    @classmethod
    def me(cls, job: str) -> Owner:
        pid = os.getpid()
        return cls(
            job=job,
            host=socket.gethostname(),
            pid=pid,
            since=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            token=secrets.token_hex(16),
            boot=_read_text("/proc/sys/kernel/random/boot_id"),
            pid_ns=_pid_namespace(),
            started=_process_start(pid),
        )

    def describe(self) -> str:
        """One printable line, however the record was written (it may come from elsewhere)."""
        text = f"host {self.host}, pid {self.pid}" + (f", since {self.since}" if self.since else "")
        return _printable(text)

    def on_this_machine(self) -> bool:
        """True when `pid` can be checked here: same host name, boot and pid namespace."""
        me = Owner.me(self.job)
        return bool(self.boot) and (self.host, self.boot, self.pid_ns) == (
            me.host,
            me.boot,
            me.pid_ns,
        )

    def alive(self) -> bool:
        """For an owner on this machine: is its process still the one that took the lock?"""
        return bool(self.started) and _process_start(self.pid) == self.started


class Lease:
    """A held owner record: touched in the background until released."""

    def __init__(self, path: Path, owner: Owner) -> None:
        self.path = path
        self.owner = owner
        self._released = threading.Event()
        self._beat = threading.Thread(target=self._heartbeat, name="lock-heartbeat", daemon=True)

    @classmethod
    def take(cls, path: Path, job: str) -> Lease:
        owner = Owner.me(job)
        for _ in range(3):  # a stale record is set aside, then the create is tried again
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            except FileExistsError:
                found = _read_owner(path)
                if not _is_stale(path, found):
                    raise _refusal(path, job, found, "") from None
                _set_aside(path, found)
                continue
            with os.fdopen(fd, "w") as handle:
                json.dump(dataclasses.asdict(owner), handle)
                handle.flush()
                os.fsync(handle.fileno())
            lease = cls(path, owner)
            lease._beat.start()
            return lease
        raise _refusal(path, job, _read_owner(path), "")

    def confirm(self) -> None:
        """Fail unless the record is still this holder's: call before an irreversible step.

        A holder paused longer than STALE_SECONDS (a frozen VM) may have been taken over."""
        found = _read_owner(self.path)
        if found is None or found.token != self.owner.token:
            raise FleetgapError(
                f"{self.owner.job} lost its lock {self.path} while paused"
                + (f" ({_printable(found.job)} now holds it: {found.describe()})" if found else "")
                + "; nothing more was changed, run it again"
            )

    def release(self) -> None:
        if self._released.is_set():
            return
        self._released.set()
        found = _read_owner(self.path)
        if found is not None and found.token == self.owner.token:
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()

    def _heartbeat(self) -> None:
        while not self._released.wait(HEARTBEAT_SECONDS):
            found = _read_owner(self.path)
            if found is None or found.token != self.owner.token:
                continue  # taken over: `confirm` reports it
            with contextlib.suppress(OSError):
                os.utime(self.path)  # no times given: NFS sets the server's clock


def lock_holder(lock_file: Path) -> Owner | None:
    """Who holds the lock at `lock_file` now (None when no one does, or a stale record)."""
    path = _owner_path(lock_file)
    found = _read_owner(path)
    if found is None or _is_stale(path, found):
        return None
    return found


def _owner_path(lock_file: Path) -> Path:
    return lock_file.with_name(lock_file.name + ".owner")


def _is_stale(path: Path, found: Owner | None) -> bool:
    """A record may be taken over when its holder is gone.

    On this machine (same host name, boot and pid namespace) that is exact: its process is
    no longer alive. From elsewhere, it is that the record went STALE_SECONDS without a
    heartbeat, both times read from the file server's clock (the record's mtime against that
    of a file written just now beside it), so clocks that differ between hosts do not matter.
    """
    if found is not None and found.on_this_machine():
        return not found.alive()
    try:
        with open(path, "rb") as handle:  # an open makes NFS fetch fresh attributes
            touched = os.fstat(handle.fileno()).st_mtime
    except FileNotFoundError:
        return True  # released meanwhile: try again
    age = _server_now(path.parent) - touched
    limit = STALE_SECONDS if found is not None else _UNREADABLE_GRACE_SECONDS
    return age > limit


def _server_now(folder: Path) -> float:
    """The file system's idea of now: the mtime of a file created here this instant."""
    fd, name = tempfile.mkstemp(prefix=".clock.", suffix=".tmp", dir=folder)
    try:
        os.write(fd, b"0")
        os.fsync(fd)
        return os.fstat(fd).st_mtime
    finally:
        os.close(fd)
        os.unlink(name)


def _set_aside(path: Path, judged: Owner | None) -> None:
    """Remove the stale record `judged`, and only it: rename it to a name of our own, then
    check it is the one judged (another host may have taken the lock over just before us);
    if it is not, put it back."""
    aside = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    try:
        os.rename(path, aside)
    except FileNotFoundError:
        return
    moved = _read_owner(aside)
    if (moved.token if moved else None) == (judged.token if judged else None):
        aside.unlink(missing_ok=True)
    else:
        os.rename(aside, path)


def _read_owner(path: Path) -> Owner | None:
    try:
        with open(path) as handle:  # open, then read: NFS checks with the server on open
            fields = json.loads(handle.read(4096))
        known = {f.name for f in dataclasses.fields(Owner)} - {"pid"}
        return Owner(pid=int(fields["pid"]), **{k: str(v) for k, v in fields.items() if k in known})
    except (OSError, ValueError, TypeError, KeyError, AttributeError):
        return None


def _refusal(lock_file: Path, job: str, found: Owner | None, legacy: str) -> FleetgapError:
    root = lock_file.parent.parent
    if found is None:
        return FleetgapError(
            f"{job} is already running on {root} ({legacy or 'another process'}); "
            "wait for it to finish"
        )
    return FleetgapError(
        f"{_printable(found.job)} is already running on {root} "
        f"({found.describe()}); wait for it to finish (a lock left by a crashed "
        f"host is taken over after {STALE_SECONDS:.0f} s without its heartbeat)"
    )


def _printable(text: str) -> str:
    """The record is written by another host: keep its text to one printable line."""
    return "".join(c if c.isprintable() else "?" for c in text)[:200]


def _pid_namespace() -> str:
    try:
        return os.readlink("/proc/self/ns/pid")
    except OSError:
        return ""


def _process_start(pid: int) -> str:
    """The start time of process `pid` in clock ticks since boot ("" when there is none)."""
    stat = _read_text(f"/proc/{pid}/stat")
    # the fields after the command name, which may itself hold spaces and parentheses
    fields = stat.rpartition(")")[2].split()
    return fields[19] if len(fields) > 19 else ""


def _read_text(path: str) -> str:
    try:
        with open(path) as handle:
            return handle.read().strip()
    except OSError:
        return ""


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
