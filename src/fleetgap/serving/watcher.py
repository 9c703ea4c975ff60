"""Watch the package paths; after a quiet second, rescan everything and swap the index.

spec: epr-api §5.1 (`-package-paths-enable-watcher`: debounced 1 s, then a full rescan).
The rescan runs in this background thread and builds a complete new index before
`IndexHolder.replace` swaps one reference, so no request ever sees half an index. A path
that does not exist yet (a closed network installs the server before its first packages)
is polled once a second and watched from the moment it appears.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import watchfiles

from fleetgap.bundle.receipt import unseen_files
from fleetgap.store import DataDir

log = logging.getLogger("fleetgap.watcher")

QUIET_MS = 1000  # a rescan starts after this long without further changes
MAX_BATCH_MS = 10_000  # ...or after this long, during a long copy


class _Watcher:
    """A daemon thread running `_run` until `stop()`."""

    name = "watcher"

    def __init__(self) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def _run(self) -> None:
        raise NotImplementedError


class PackageWatcher(_Watcher):
    """Calls `rescan()` (in this watcher's thread) whenever the package paths change."""

    name = "package-watcher"

    def __init__(self, paths: Sequence[Path], rescan: Callable[[], None]) -> None:
        self.paths = tuple(Path(p).absolute() for p in paths)
        self.rescan = rescan
        super().__init__()

    def start(self) -> None:
        log.info("Watching package paths for changes: %s", ", ".join(map(str, self.paths)))
        super().start()

    def _run(self) -> None:
        while not self._stop.is_set():
            existing = tuple(p for p in self.paths if p.is_dir())
            if not existing:
                if self._stop.wait(1.0):
                    return
                if any(p.is_dir() for p in self.paths):
                    self._safe_rescan()
                continue
            try:
                restart = self._watch(existing)
            except Exception:  # watch setup can fail (path removed meanwhile): retry
                log.warning("package path watcher failed; retrying", exc_info=True)
                restart = not self._stop.wait(1.0)
            if restart:
                self._safe_rescan()

    def _watch(self, existing: tuple[Path, ...]) -> bool:
        """Watch until stopped (False) or until the set of existing paths changes (True)."""
        for changes in watchfiles.watch(
            *existing,
            stop_event=self._stop,
            step=QUIET_MS,
            debounce=MAX_BATCH_MS,
            rust_timeout=1000,
            yield_on_timeout=True,
            raise_interrupt=False,
        ):
            if tuple(p for p in self.paths if p.is_dir()) != existing:
                return True
            if changes:
                log.info(
                    "package paths changed (%d events); rescanning",
                    len(changes),
                    extra={"ecs": {"event.count": len(changes)}},
                )
                self._safe_rescan()
        return False

    def _safe_rescan(self) -> None:
        try:
            self.rescan()
        except Exception:
            log.error("package rescan failed; still serving the previous index", exc_info=True)


class GenerationWatcher(_Watcher):
    """Calls `reload()` (in this watcher's thread) when a data directory's generation file
    changes, that is once after each finished `bundle load`, on this host or on any other
    sharing the directory (replicas on NFS or a ReadWriteMany volume).

    The file is opened and read twice a second, not just stat'ed: an NFS client checks with
    the server when a file is opened (close-to-open consistency) but may answer a stat from
    attributes it cached for up to a minute. A load may add thousands of files, and the
    server must swap to them once, when all are in place, not follow each one as the package
    watcher does; and where this host's view of the folders lags behind the generation file
    (NFS caches listings too), the reload waits until it shows every file of that load
    (`unseen_files`), so the new index is never served without its files, for at most
    PATIENCE_SECONDS.
    """

    POLL_SECONDS = 0.5
    PATIENCE_SECONDS = 30.0
    name = "generation-watcher"

    def __init__(
        self,
        data: DataDir,
        reload: Callable[[], None],
        seen: bytes | None = None,
        describe: Callable[[], str] | None = None,  # names the load, for the log line
    ) -> None:
        """`seen`: the generation read before the index being served was built (a load
        that finishes while it is built is then reloaded too); by default, now."""
        self.data = data
        self.reload = reload
        self.describe = describe
        self._seen = read_generation(data) if seen is None else seen
        super().__init__()

    def _run(self) -> None:
        changed_at: float | None = None  # a change not reloaded yet, since then
        while not self._stop.wait(self.POLL_SECONDS):
            current = read_generation(self.data)
            if current != self._seen:
                self._seen = current
                changed_at = time.monotonic()
            if changed_at is None:
                continue
            unseen = unseen_files(self.data, _label(current))
            if unseen and time.monotonic() - changed_at < self.PATIENCE_SECONDS:
                continue  # this host does not show all of the load yet: ask again soon
            changed_at = None
            if unseen:
                log.warning(
                    "a bundle load finished, but %d of its files are still not visible here "
                    "after %.0f s (first: %s); reloading anyway",
                    len(unseen),
                    self.PATIENCE_SECONDS,
                    unseen[0],
                )
            what = self.describe() if self.describe is not None else "a bundle load"
            log.info("%s finished (%s); reloading", what, self.data.generation)
            try:
                self.reload()
            except Exception:
                log.error(
                    "reload after a bundle load failed; still serving the previous index",
                    exc_info=True,
                )


def read_generation(data: DataDir) -> bytes:
    """The generation file's content: `<time_ns> <label>` (store.bump_generation)."""
    try:
        with open(data.generation, "rb") as handle:
            return handle.read(4096)
    except PermissionError:  # written 0600 by an older fleetgap run as another user
        with contextlib.suppress(OSError):
            info = data.generation.stat()
            return f"{info.st_ino} {info.st_mtime_ns} {info.st_size}".encode()
        return b""
    except OSError:
        return b""  # none yet (not None: that means "read it now" to the watcher)


def _label(generation: bytes) -> str:
    parts = generation.decode("ascii", "replace").split()
    return parts[1] if len(parts) == 2 else ""
