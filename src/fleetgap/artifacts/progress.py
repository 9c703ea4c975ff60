"""Terminal progress bars for `artifacts mirror` and `bundle create` (rich), one bar per
file being fetched, and one for writing the bundle."""

from __future__ import annotations

from dataclasses import dataclass

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

    def for_writing(self, name: str) -> _WriteBar:
        """A `bundle.writer.WriteProgress`: the bytes of the files carried into `name`."""
        task = self._progress.add_task(f"writing {name}", total=None)
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
