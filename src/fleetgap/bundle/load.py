"""Load a bundle into a data directory: all of it or nothing, even across kill -9.

1. Under the data dir's lock, `recover` first (a journal left by a killed load is rolled
   forward; incoming folders without a journal are removed).
2. Pre-checks on the verified manifest: already loaded (a no-op), downgrade, a delta's
   prerequisites, files at the same path with other content (refused: load never replaces
   or deletes what it did not bring).
3. Stream every member into DATA/state/incoming/<bundle_id>/ while checking it (verify.py).
4. The check of step 2 again (a file may have appeared while streaming; writers that
   publish into DATA take the same lock, others may not), then write the journal (the
   moves, the receipt, the audit record; fsync), publish (sidecars,
   signatures and keys before the files they verify; os.replace), receipt, audit line,
   remove the journal, then `bump_generation` last so servers rescan once.

Test hook: env FLEETGAP_TEST_PAUSE_AT=stream|publish makes load sleep 60 s after the first
streamed member or after the first published move, so a test can kill -9 it there (or act
then, and create the file FLEETGAP_TEST_RESUME_FILE names to let it go on at once).
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fleetgap import __version__
from fleetgap.artifacts import defend
from fleetgap.bundle.manifest import FileEntry, member_rank
from fleetgap.bundle.receipt import loaded_receipts, receipts_dir, sha256_file
from fleetgap.bundle.verify import Check, Trust, Verified, verify_bundle
from fleetgap.bundle.writer import WriteProgress
from fleetgap.errors import FleetgapError
from fleetgap.pgp.fleet_server import KEY_FILENAME
from fleetgap.store import DataDir, Lease, atomic_write_bytes, bump_generation, exclusive


@dataclass(frozen=True)
class LoadResult:
    bundle_id: str
    sequence: int
    status: str  # loaded | already loaded | dry run
    published: tuple[str, ...]
    checks: tuple[Check, ...]


class _AlreadyLoaded(Exception):
    pass


# Fleet Server serves its key file only when its mode is exactly 0600 (spec: fleet-server-pgp
# §3); everything else a bundle brings is world-readable, as `serve` reads it.
_FILE_MODES = {f"keys/{KEY_FILENAME}": 0o600}
_DEFAULT_MODE = 0o644


def _counted(chunks: Iterator[bytes], progress: WriteProgress) -> Iterator[bytes]:
    for chunk in chunks:
        progress.advance(len(chunk))
        yield chunk


def journal_path(data: DataDir) -> Path:
    return data.state / "load-journal.json"


def load(
    files: Sequence[Path],
    data: DataDir,
    trust: Trust,
    *,
    allow_downgrade: bool = False,
    dry_run: bool = False,
    progress: WriteProgress | None = None,  # the carried bytes, as they are checked
) -> LoadResult:
    if dry_run:
        return _load(files, data, trust, allow_downgrade, dry_run, progress=progress)
    existed = data.root.exists()
    data.ensure()
    try:
        with exclusive(data.load_lock, "fleetgap bundle load") as lease:
            recover(data)
            return _load(files, data, trust, allow_downgrade, dry_run, lease, progress)
    except BaseException:
        if not existed:
            _remove_unused_skeleton(data)
        raise


def _remove_unused_skeleton(data: DataDir) -> None:
    """A refused load into a directory it made leaves nothing behind: the folders and lock
    files it created go again, unless a file was published meanwhile."""
    everything = data.root.rglob("*")
    outside_state = (p for p in everything if not p.is_dir() and data.state not in p.parents)
    if next(outside_state, None) is None:
        shutil.rmtree(data.root, ignore_errors=True)


def _load(
    files,
    data: DataDir,
    trust: Trust,
    allow_downgrade: bool,
    dry_run: bool,
    lease: Lease | None = None,
    progress: WriteProgress | None = None,
) -> LoadResult:
    incoming: Path | None = None
    keep: list[str] = []  # carried files already present with the same content

    def before_files(verified: Verified) -> None:
        nonlocal incoming
        manifest = verified.manifest
        receipts = loaded_receipts(data)
        if any(r["bundle_id"] == manifest.bundle_id for r in receipts):
            raise _AlreadyLoaded()
        newest = max((r["sequence"] for r in receipts), default=None)
        if newest is not None and manifest.sequence < newest and not allow_downgrade:
            raise FleetgapError(
                f"bundle {manifest.bundle_id} has sequence {manifest.sequence}, "
                f"lower than the newest loaded ({newest}); refused as a "
                "downgrade (--allow-downgrade to load it anyway)"
            )
        _check_prerequisites(data, manifest.files, receipts, manifest.bundle_id)
        keep.extend(_check_conflicts(data, manifest.carried, receipts))
        if progress is not None:
            progress.begin(manifest.carried_bytes)
        if not dry_run:
            incoming = data.incoming / manifest.bundle_id
            shutil.rmtree(incoming, ignore_errors=True)
            incoming.mkdir(parents=True)

    def sink(entry: FileEntry, chunks: Iterator[bytes]) -> None:
        if progress is not None:
            chunks = _counted(chunks, progress)
        if incoming is None:
            for _ in chunks:
                pass
            return
        target = incoming / entry.path
        target.parent.mkdir(parents=True, exist_ok=True)
        with open(target, "wb") as handle:
            for chunk in chunks:
                handle.write(chunk)
            handle.flush()
            os.fsync(handle.fileno())
        _pause("stream")

    try:
        verified = verify_bundle(
            files, trust, sink=sink, before_files=before_files, present=data.root
        )
    except _AlreadyLoaded:
        from fleetgap.bundle.reader import find_parts

        trailer = find_parts(files)[0].trailer
        return LoadResult(trailer.bundle_id, -1, "already loaded", (), ())
    except OSError as exc:
        _discard(incoming)
        raise FleetgapError(
            f"cannot write into {data.incoming}: {exc.strerror or exc} (nothing was published)"
        ) from None
    except BaseException:
        _discard(incoming)
        raise
    manifest = verified.manifest
    if not dry_run:  # again at publish time: a file may have appeared while streaming
        try:
            keep = _check_conflicts(data, manifest.carried, loaded_receipts(data))
        except FleetgapError:
            _discard(incoming)
            raise
    moves = [e.path for e in sorted(manifest.carried, key=_publish_order) if e.path not in keep]
    if dry_run:
        return LoadResult(
            manifest.bundle_id, manifest.sequence, "dry run", tuple(moves), tuple(verified.checks)
        )
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    receipt = {
        "bundle_id": manifest.bundle_id,
        "sequence": manifest.sequence,
        "created": manifest.created,
        "loaded_at": now,
        "fleetgap_version": __version__,
        "delta": manifest.delta,
        "signer": verified.signer,
        "files": [
            {"path": e.path, "sha256": e.sha256, "size": e.size, "verified_by": e.verified_by}
            for e in manifest.files
        ],
        "carried_files": len(manifest.carried),  # a delta carries fewer than `files`
        "carried_bytes": manifest.carried_bytes,
        "selection": manifest.selection,  # what was asked for (the status page's matrix)
    }
    audit = {
        "event": "bundle load",
        "bundle_id": manifest.bundle_id,
        "at": now,
        "sequence": manifest.sequence,
        "signer": verified.signer,
        "published": moves,
        "already_present": keep,
        "checks": [c.as_dict() for c in verified.checks],
    }
    journal = {"bundle_id": manifest.bundle_id, "moves": moves, "receipt": receipt, "audit": audit}
    if lease is not None:
        try:  # the point of no return: the lock is still ours, not taken over by another host
            lease.confirm()
        except FleetgapError:
            _discard(incoming)
            raise
    atomic_write_bytes(journal_path(data), json.dumps(journal).encode())
    _roll_forward(data, journal)
    return LoadResult(
        manifest.bundle_id, manifest.sequence, "loaded", tuple(moves), tuple(verified.checks)
    )


def recover(data: DataDir) -> str | None:
    """Finish a load that was killed after its journal was written; else drop stale
    incoming folders. Returns the bundle id rolled forward, if any."""
    journal = journal_path(data)
    if journal.is_file():
        record = json.loads(journal.read_text())
        _roll_forward(data, record)
        return record["bundle_id"]
    if data.incoming.is_dir():
        for folder in data.incoming.iterdir():
            if folder.is_dir() and len(folder.name) == 32:
                shutil.rmtree(folder, ignore_errors=True)
    return None


def _roll_forward(data: DataDir, journal: dict[str, Any]) -> None:
    bundle_id = journal["bundle_id"]
    incoming = data.incoming / bundle_id
    for index, path in enumerate(journal["moves"]):
        source = incoming / path
        if source.is_file():  # else moved before the crash
            target = data.root / path
            target.parent.mkdir(parents=True, exist_ok=True)
            os.chmod(source, _FILE_MODES.get(path, _DEFAULT_MODE))
            os.replace(source, target)
        if index == 0:
            _pause("publish")
    receipt = journal["receipt"]
    name = f"{receipt['sequence']:012d}-{bundle_id}.json"
    receipt_file = receipts_dir(data) / name
    audit_file = data.state / "audit.jsonl"
    if not receipt_file.is_file():
        audited = audit_file.is_file() and f'"bundle_id": "{bundle_id}"' in audit_file.read_text()
        if not audited:
            with open(audit_file, "a") as handle:
                handle.write(json.dumps(journal["audit"], sort_keys=True) + "\n")
                handle.flush()
                os.fsync(handle.fileno())
        body = json.dumps(receipt, indent=1).encode() + b"\n"
        atomic_write_bytes(receipt_file, body, mode=0o644)  # servers read it, maybe as another user
    journal_path(data).unlink(missing_ok=True)
    shutil.rmtree(incoming, ignore_errors=True)
    bump_generation(data, bundle_id)


def _check_prerequisites(data: DataDir, files, receipts, bundle_id: str) -> None:
    """A delta relies on files it does not carry: each must be there, unchanged."""
    problems = []
    for entry in files:
        if entry.in_bundle:
            continue
        path = data.root / entry.path
        state = (
            "missing"
            if not path.is_file()
            else ("different" if sha256_file(path) != entry.sha256 else None)
        )
        if state is None:
            continue
        brought = next(
            (
                r
                for r in reversed(receipts)
                if any(f["path"] == entry.path and f["sha256"] == entry.sha256 for f in r["files"])
            ),
            None,
        )
        origin = (
            f"brought by bundle {brought['bundle_id']} (sequence {brought['sequence']})"
            if brought
            else "brought by no bundle loaded here"
        )
        problems.append(f"{entry.path} is {state} ({origin})")
    if problems:
        raise FleetgapError(
            f"delta bundle {bundle_id} relies on files this data directory does "
            f"not hold as it expects: {'; '.join(problems)}; load the bundle(s) "
            "named first, or a full bundle"
        )


def _check_conflicts(data: DataDir, carried, receipts) -> list[str]:
    """Carried files already present: the same content is kept as is; other content at the
    same path is refused (load never replaces what it did not bring). Elastic Defend's
    manifests (and artifacts at a stable relative_url) change in place upstream: those are
    replaced when what is there now is what an earlier bundle brought."""
    same, different, replaced = [], [], []
    for entry in carried:
        path = data.root / entry.path
        if path.is_symlink() or path.is_dir():
            different.append(entry.path)
        elif path.is_file():
            present = sha256_file(path)
            if present == entry.sha256:
                same.append(entry.path)
            elif entry.verified_by not in _UPDATED_IN_PLACE or not _brought(
                receipts, entry, present
            ):
                different.append(entry.path)
            else:
                replaced.append(entry)
    broken = _manifests_left_behind(data, carried, replaced)
    if broken:
        raise FleetgapError(
            f"{'; '.join(broken)}: this bundle does not carry that manifest, so replacing "
            "the file would leave it listing content no longer served; refused (carry every "
            "Endpoint version held here in the bundle's protection_artifacts)"
        )
    if different:
        raise FleetgapError(
            f"{data.root} already holds other content at: "
            f"{', '.join(different)}; refused (load never replaces a file); "
            "move those aside and load again"
        )
    return same


_UPDATED_IN_PLACE = ("defend-manifest", "defend-manifest-entry")


def _manifests_left_behind(data: DataDir, carried, replaced: list[FileEntry]) -> list[str]:
    """Defend manifests held here that this bundle does not replace and that list, at a path
    whose file it replaces, other content: Endpoint of that version could no longer apply
    them."""
    artifacts = {e.path: e for e in replaced if e.verified_by == "defend-manifest-entry"}
    if not artifacts:
        return []
    carried_paths = {e.path for e in carried}
    folder = data.root / defend.MANIFEST_FOLDER
    problems = []
    for path in sorted(folder.glob("artifacts-*.zip")) if folder.is_dir() else ():
        relative = path.relative_to(data.root).as_posix()
        if relative in carried_paths:
            continue
        try:
            held = defend.read_manifest_zip(path, relative).by_path()
        except FleetgapError:
            continue  # doctor and the status page report it
        for artifact_path, entry in sorted(artifacts.items()):
            listed = held.get(artifact_path)
            if listed is not None and listed.encoded_sha256 != entry.sha256:
                problems.append(f"{relative} lists {artifact_path} with other content")
    return problems


def _brought(receipts, entry: FileEntry, sha256: str) -> bool:
    """An earlier bundle brought exactly this content here *as a Defend file*: a relative_url
    naming an agent binary, a sidecar or any other file a bundle brought verified some other
    way never replaces it (a receipt that does not record the kind vouches for nothing)."""
    return any(
        f["path"] == entry.path
        and f["sha256"] == sha256
        and f.get("verified_by") in _UPDATED_IN_PLACE
        for r in receipts
        for f in r["files"]
    )


def _publish_order(entry: FileEntry) -> tuple[int, str]:
    # keys, then sidecars/signatures, then the files they verify; a Defend manifest last, so
    # Endpoint never reads one whose artifacts are not all in place yet
    if entry.verified_by == "defend-manifest":
        return (3, entry.path)
    return (member_rank(entry.path), entry.path)


def _discard(incoming: Path | None) -> None:
    if incoming is not None:
        shutil.rmtree(incoming, ignore_errors=True)


def _pause(point: str) -> None:
    if os.environ.get("FLEETGAP_TEST_PAUSE_AT") == point:
        print(f"paused at {point}", flush=True)
        resume = os.environ.get("FLEETGAP_TEST_RESUME_FILE")
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not (resume and os.path.exists(resume)):
            time.sleep(0.05)
