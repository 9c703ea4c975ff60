"""Progress for `artifacts mirror`, `bundle create` and `bundle load`: on a terminal, rich
bars (one per file being fetched, one for writing or loading the bundle); elsewhere
(systemd, CI, `| tee`), a plain line every few seconds (`PlainProgress`)."""

from __future__ import annotations

import os
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import TextIO

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskID,
    TextColumn,
    TransferSpeedColumn,
)

from fleetgap.artifacts.catalogue import Artifact


class RichProgress:
    """Context manager; `for_artifact` gives the `net.Progress` for one download."""

    def __init__(self) -> None:
        self._progress = Progress(
            TextColumn("{task.description}", markup=False),  # names come from outside
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            console=Console(stderr=True),
            transient=True,
        )

    def __enter__(self) -> RichProgress:
        self._progress.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self._progress.__exit__(*exc)

    def for_artifact(self, artifact: Artifact) -> _Bar:
        return self.for_file(artifact.name)

    def for_file(self, name: str) -> _Bar:
        task = self._progress.add_task(name, total=None)
        return _Bar(self._progress, task, name)

    def for_writing(self, name: str, verb: str = "writing") -> _WriteBar:
        """A `bundle.writer.WriteProgress`: the bytes of the files carried into `name`."""
        task = self._progress.add_task(f"{verb} {name}", total=None)
        return _WriteBar(self._progress, task)


@dataclass
class _Bar:
    progress: Progress
    task: TaskID
    name: str

    def start(self, total: int | None, done: int) -> None:
        self.progress.update(self.task, total=total, completed=done)

    def advance(self, size: int) -> None:
        self.progress.advance(self.task, size)

    def verifying(self) -> None:
        self.progress.update(self.task, description=f"{self.name} (verifying)")


@dataclass
class _WriteBar:
    progress: Progress
    task: TaskID

    def begin(self, total_bytes: int) -> None:
        self.progress.update(self.task, total=total_bytes, completed=0)

    def advance(self, nbytes: int) -> None:
        self.progress.advance(self.task, nbytes)


def progress_interval() -> float:
    """Seconds between plain progress lines (env FLEETGAP_PROGRESS_INTERVAL, default 5)."""
    try:
        seconds = float(os.environ.get("FLEETGAP_PROGRESS_INTERVAL", "5"))
    except ValueError:
        return 5.0
    return min(max(seconds, 0.05), 3600.0)


class PlainProgress:
    """The same interface as RichProgress, for output that is not a terminal: a line on
    stderr every `interval` seconds while the work goes on, and one when it ends well, e.g.
    `bundle create: 4 of 9 files fetched, 120.5 MB received (35 s)`."""

    def __init__(self, label: str, interval: float | None = None, out: TextIO | None = None):
        self.label = label
        self.interval = progress_interval() if interval is None else interval
        self.out = out if out is not None else sys.stderr
        self._files: list[_PlainBar] = []
        self._writes: list[_PlainBar] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._began = time.monotonic()

    def __enter__(self) -> PlainProgress:
        self._thread.start()
        return self

    def __exit__(self, exc_type: object, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        if exc_type is None:  # after a failure, the error line alone
            self._print()

    def for_artifact(self, artifact: Artifact) -> _PlainBar:
        return self.for_file(artifact.name)

    def for_file(self, name: str) -> _PlainBar:
        return self._add(self._files, name)

    def for_writing(self, name: str, verb: str = "writing") -> _PlainBar:
        return self._add(self._writes, f"{verb} {name}")

    def line(self) -> str:
        with self._lock:
            files = [(bar.total, bar.done) for bar in self._files]
            writes = [(bar.name, bar.total, bar.done) for bar in self._writes]
        elapsed = f"({time.monotonic() - self._began:.0f} s)"
        if writes:
            name, total, done = writes[-1]
            share = f" ({100 * done // total}%)" if total else ""
            of = f" of {total / 1e6:.1f}" if total is not None else ""
            return f"{self.label}: {name}: {done / 1e6:.1f}{of} MB{share} {elapsed}"
        finished = sum(1 for total, done in files if total is not None and done >= total)
        received = sum(done for _, done in files) / 1e6
        return (
            f"{self.label}: {finished} of {len(files)} files fetched, {received:.1f} MB "
            f"received {elapsed}"
        )

    def _add(self, bars: list[_PlainBar], name: str) -> _PlainBar:
        bar = _PlainBar(name, self._lock)
        with self._lock:
            bars.append(bar)
        return bar

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self._print()

    def _print(self) -> None:
        print(self.line(), file=self.out, flush=True)


@dataclass
class _PlainBar:
    """A net.Progress, a mirror bar and a WriteProgress at once: it only counts."""

    name: str
    lock: threading.Lock = field(repr=False)
    total: int | None = None
    done: int = 0

    def start(self, total: int | None, done: int) -> None:
        with self.lock:
            self.total, self.done = total, done

    def begin(self, total_bytes: int) -> None:
        self.start(total_bytes, 0)

    def advance(self, size: int) -> None:
        with self.lock:
            self.done += size

    def verifying(self) -> None:
        pass
