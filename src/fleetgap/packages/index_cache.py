"""A persisted index: what reading each package produced, keyed by the files' identity.

A restart reuses the entry of every package whose files are unchanged (size, mtime, inode
of the zip or of every file of a directory, and of its `.sig`), so only new or changed
packages are read again. The cache is derived data (DESIGN: `DATA/state/`): it can be
deleted at any time, and a damaged or foreign file is ignored and rebuilt.

Entries are stored with `marshal` (plain data only: it cannot carry code to run).
"""

from __future__ import annotations

import contextlib
import logging
import marshal
import os
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from fleetgap import __version__
from fleetgap.packages.loader import LoadedModel, Summary
from fleetgap.packages.render import Rendering

log = logging.getLogger("fleetgap.packages")

FORMAT = 3


@dataclass
class IndexCache:
    path: Path
    validate: bool
    _entries: dict[str, tuple[str, bytes]] | None = None

    def lookup(self, package: Path, identity: str) -> LoadedModel | None:
        """The cached result for `package` if its files still have this `identity`."""
        found = self._load().get(str(package))
        if found is None or found[0] != identity:
            return None
        try:
            model, summary, is_zip, warnings, rendering = marshal.loads(found[1])
            return LoadedModel(
                model,
                Summary(*summary),
                is_zip,
                tuple(warnings),
                tuple(rendering) if rendering else None,
            )
        except (ValueError, EOFError, TypeError):
            return None

    def store(self, loaded: Iterable[tuple[Path, str, LoadedModel, Rendering | None]]) -> None:
        """Make the cache hold exactly these entries: write the new or changed ones,
        forget packages that are gone."""
        known = self._load()
        keep: set[str] = set()
        rows = []
        for path, identity, item, rendering in loaded:
            keep.add(str(path))
            same_files = known.get(str(path), ("",))[0] == identity
            if item.rendering is rendering and same_files:
                continue
            model = item.model if isinstance(item.model, bytes) else marshal.dumps(item.model)
            entry = (model, tuple(item.summary), item.is_zip, list(item.warnings), rendering)
            key = f"{item.summary.name}-{item.summary.version}"
            rows.append((str(path), identity, key, marshal.dumps(entry)))
        gone = [(path,) for path in known if path not in keep]
        if not rows and not gone:
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with _connect(self.path) as db:
                _reset_if_foreign(db, self._meta())
                db.executemany("DELETE FROM entries WHERE path = ?", gone)
                db.executemany("INSERT OR REPLACE INTO entries VALUES (?, ?, ?, ?)", rows)
        except (sqlite3.Error, OSError) as exc:
            log.warning("index cache %s not written, removed to be rebuilt: %s", self.path, exc)
            with contextlib.suppress(OSError):
                self.path.unlink()

    def current_size(self, candidates: list[Path]) -> int | None:
        """The number of packages (name and version) the cache holds when it holds exactly
        `candidates` with their files unchanged; None otherwise. Reads no entries."""
        if not self.path.is_file():
            return None
        try:
            with _connect(self.path) as db:
                if not _reset_if_foreign(db, self._meta()):
                    return None
                rows = db.execute("SELECT path, fingerprint, package FROM entries").fetchall()
        except sqlite3.Error:
            return None
        known = {path: identity for path, identity, _ in rows}
        if len(known) != len(candidates):
            return None
        if any(known.get(str(path)) != fingerprint(path) for path in candidates):
            return None
        return len({package for _, _, package in rows})

    def _meta(self) -> str:
        return f"{FORMAT}/{__version__}/validate={self.validate}"

    def _load(self) -> dict[str, tuple[str, bytes]]:
        if self._entries is None:
            self._entries = {}
            if self.path.is_file():
                try:
                    with _connect(self.path) as db:
                        if _reset_if_foreign(db, self._meta()):
                            rows = db.execute("SELECT path, fingerprint, entry FROM entries")
                            self._entries = {p: (f, e) for p, f, e in rows}
                except sqlite3.Error as exc:
                    log.warning("index cache %s unreadable, rebuilding: %s", self.path, exc)
        return self._entries


_CREATE_ENTRIES = (
    "CREATE TABLE IF NOT EXISTS entries "
    "(path TEXT PRIMARY KEY, fingerprint TEXT, package TEXT, entry BLOB)"
)


def _connect(path: Path) -> sqlite3.Connection:
    db = sqlite3.connect(path, timeout=30)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT)")
    db.execute(_CREATE_ENTRIES)
    return db


def _reset_if_foreign(db: sqlite3.Connection, meta: str) -> bool:
    """True when the cache was written by this fleetgap with the same options."""
    row = db.execute("SELECT value FROM meta WHERE key = 'format'").fetchone()
    if row is not None and row[0] == meta:
        return True
    db.execute("DROP TABLE entries")  # its layout may be another version's
    db.execute(_CREATE_ENTRIES)
    db.execute("INSERT OR REPLACE INTO meta VALUES ('format', ?)", (meta,))
    return False


def fingerprint(package: Path) -> str:
    """The identity of a package's files: any change to them changes it."""
    text = str(package)
    parts = [_stat(text), _stat(text + ".sig")]
    if os.path.isdir(text):
        for directory, dirnames, filenames in os.walk(text):
            dirnames.sort()
            for name in sorted(filenames):
                full = os.path.join(directory, name)
                parts.append(f"{os.path.relpath(full, text)}={_stat(full)}")
    return "|".join(parts)


def _stat(path: str) -> str:
    try:
        st = os.stat(path)
    except OSError:
        return "-"
    return f"{st.st_size}:{st.st_mtime_ns}:{st.st_ino}"
