"""Mirror artifacts into DATA/downloads/: fetch, verify, then publish atomically.

For each artifact: if the binary and both sidecars are already published, nothing is
fetched (only verified files are ever published). Otherwise the `.sha512` and `.asc` are
fetched first (small; a missing one fails the artifact before the big download), the binary
is downloaded — resuming — into DATA/state/incoming/ and hashed as it arrives; that one
SHA-512 pass is checked against the sidecar with the agent's rules and, when the signature
is SHA-512 (Elastic's are), also completes the detached signature's check against the
trusted keys (spec: agent-artifacts §6.1, §6.3). Only then are the sidecars and, last,
the binary moved into downloads/: a visible binary always has its verified sidecars
beside it.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from fleetgap.artifacts.catalogue import Artifact
from fleetgap.artifacts.urls import DEFAULT_SOURCE, check_source, compose_url
from fleetgap.errors import FleetgapError
from fleetgap.net import Net, NetError, NetOptions, Progress, discard_part
from fleetgap.pgp.elastic_key import elastic_signing_keys
from fleetgap.pgp.keys import PublicKey
from fleetgap.pgp.sha512 import expected_sha512
from fleetgap.pgp.signatures import (
    SignatureError,
    SignedData,
    SignedDigests,
    check_signers,
    parse_detached_signature,
    verify_digests,
)
from fleetgap.store import (
    DataDir,
    atomic_write_bytes,
    exclusive,
    place_file,
    prune_stale,
)

FETCHED, PRESENT, MISSING, FAILED = "fetched", "present", "missing", "failed"
# A partial download nobody resumed for this long (its artifact is no longer selected, or
# upstream changed) is removed at the start of the next run instead of piling up.
STALE_PART_SECONDS = 14 * 86400


@dataclass(frozen=True)
class Outcome:
    artifact: Artifact
    url: str
    status: str  # fetched | present | missing (not published at the source) | failed
    reason: str = ""
    size: int = 0  # bytes of the binary
    received: int = 0  # bytes taken off the network for the binary in this run
    resumed_from: int = 0


@dataclass(frozen=True)
class MirrorReport:
    outcomes: tuple[Outcome, ...]
    seconds: float
    pruned: int = 0  # stale partial downloads removed from DATA/state/incoming/

    def count(self, status: str) -> int:
        return sum(1 for o in self.outcomes if o.status == status)

    @property
    def failures(self) -> tuple[Outcome, ...]:
        """Failed and missing artifacts: either way the mirror is not complete."""
        return tuple(o for o in self.outcomes if o.status in (FAILED, MISSING))

    @property
    def received(self) -> int:
        return sum(o.received for o in self.outcomes)

    def summary(self) -> str:
        megabytes = self.received / 1e6
        rate = megabytes / self.seconds if self.seconds > 0 else 0.0
        pruned = (
            f"; removed {self.pruned} partial download file(s) untouched for "
            f"{STALE_PART_SECONDS // 86400} days"
            if self.pruned
            else ""
        )
        return (
            f"{len(self.outcomes)} artifacts: {self.count(FETCHED)} fetched, "
            f"{self.count(PRESENT)} already present, {self.count(MISSING)} not published at "
            f"the source, {self.count(FAILED)} failed; "
            f"{megabytes:.1f} MB in {self.seconds:.1f} s ({rate:.1f} MB/s){pruned}"
        )


class MirrorProgress(Progress, Protocol):
    """A download's progress, plus the verification stage that follows it."""

    def verifying(self) -> None: ...


ProgressFactory = Callable[[Artifact], MirrorProgress | None]


def mirror(
    artifacts: Sequence[Artifact],
    data: DataDir,
    keys: Sequence[PublicKey],
    *,
    source: str = DEFAULT_SOURCE,
    net_options: NetOptions | None = None,
    parallel: int = 4,
    progress: ProgressFactory | None = None,
) -> MirrorReport:
    """Fetch, verify and publish every artifact; failures are reported, never published."""
    if not keys:
        raise FleetgapError("no trusted signing key to verify artifacts with")
    if parallel < 1:
        raise FleetgapError("--parallel must be at least 1")
    check_source(source)
    data.ensure()
    options = net_options or NetOptions()
    if options.connections < parallel:
        options = NetOptions(**{**options.__dict__, "connections": parallel})
    unique = tuple({a.path: a for a in artifacts}.values())
    started = time.monotonic()
    with exclusive(data.load_lock, "fleetgap artifacts mirror"):
        pruned = prune_stale(data.incoming, STALE_PART_SECONDS)
        with Net(options) as net:
            job = _Job(net, data, tuple(keys), source, progress)
            outcomes = _run_all(job.run, unique, parallel)
    return MirrorReport(outcomes, time.monotonic() - started, pruned)


def trusted_keys(data: DataDir, key_files: Sequence[Path] = ()) -> list[PublicKey]:
    """`--key` files if given; otherwise Elastic's key found in DATA/keys/ (pinned)."""
    return list(elastic_signing_keys(data.root, key_files).required(data.root))


def _run_all(run: Callable[[Artifact], Outcome], artifacts: Sequence[Artifact], parallel: int):
    """`run` over all artifacts on `parallel` daemon threads.

    Daemon threads, joined with a timeout, keep Ctrl-C immediate: the interrupt ends the
    process without waiting for downloads, whose `.part` files stay for the next run.
    """
    results: list[Outcome | None] = [None] * len(artifacts)
    errors: list[BaseException] = []
    work: queue.SimpleQueue[tuple[int, Artifact]] = queue.SimpleQueue()
    for item in enumerate(artifacts):
        work.put(item)

    def worker() -> None:
        while not errors:
            try:
                index, artifact = work.get_nowait()
            except queue.Empty:
                return
            try:
                results[index] = run(artifact)
            except BaseException as exc:  # a bug, not a download failure: stop and re-raise
                errors.append(exc)

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(parallel)]
    for thread in threads:
        thread.start()
    for thread in threads:
        while thread.is_alive():
            thread.join(0.25)
    if errors:
        raise errors[0]
    return tuple(r for r in results if r is not None)


@dataclass(frozen=True)
class _Job:
    net: Net
    data: DataDir
    keys: tuple[PublicKey, ...]
    source: str
    progress: ProgressFactory | None

    def run(self, artifact: Artifact) -> Outcome:
        directory, name = artifact.path.rsplit("/", 1)
        url = compose_url(self.source, directory, name)
        dest = self.data.downloads / artifact.path
        sidecars = [self.data.downloads / s for s in artifact.sidecars]
        if dest.is_file() and all(s.is_file() for s in sidecars):
            return Outcome(artifact, url, PRESENT, size=dest.stat().st_size)
        part = self.data.incoming / (artifact.path + ".part")
        try:
            return self._fetch(artifact, url, dest, sidecars, part)
        except (FleetgapError, OSError) as exc:
            return Outcome(artifact, url, FAILED, reason=_reason(exc))

    def _fetch(
        self, artifact: Artifact, url: str, dest: Path, sidecars: list[Path], part: Path
    ) -> Outcome:
        directory, name = artifact.path.rsplit("/", 1)
        try:
            checksum = _sidecar(self.net, compose_url(self.source, directory, name + ".sha512"))
        except _NotPublished as exc:  # Elastic publishes no such file for this version
            return Outcome(artifact, url, MISSING, reason=f"not published at the source ({exc})")
        signature = _sidecar(self.net, compose_url(self.source, directory, name + ".asc"))
        expected = expected_sha512(checksum.decode("utf-8", "replace"), name)
        if expected is None:
            reason = f'checksum for "{name}" was not found in "{name}.sha512"'
            return Outcome(artifact, url, FAILED, reason=reason)
        try:  # before the big download: an .asc no trusted key can check fails at once
            parsed = parse_detached_signature(signature)
            check_signers(parsed, self.keys)
        except SignatureError as exc:
            return Outcome(artifact, url, FAILED, reason=f"bad signature: {exc}")
        progress = self.progress(artifact) if self.progress else None
        got = self.net.download(url, part, progress)
        received = got.received
        if got.sha512 != expected and got.resumed_from:
            # The kept part may predate an upstream change the validator missed: once afresh.
            discard_part(part)
            got = self.net.download(url, part, progress)
            received += got.received
        if got.sha512 != expected:
            discard_part(part)
            reason = f"checksum mismatch: expected {expected}, computed {got.sha512}"
            return Outcome(artifact, url, FAILED, reason, got.size, received, got.resumed_from)
        if progress is not None:
            progress.verifying()
        try:  # the download's SHA-512 state is the signature's hash too (one pass)
            verify_digests(SignedDigests(SignedData(path=part), got.digest), parsed, self.keys)
        except SignatureError as exc:
            discard_part(part)
            reason = f"bad signature: {exc}"
            return Outcome(artifact, url, FAILED, reason, got.size, received, got.resumed_from)
        atomic_write_bytes(sidecars[0], checksum)
        atomic_write_bytes(sidecars[1], signature)
        place_file(part, dest)
        discard_part(part)
        return Outcome(artifact, url, FETCHED, "", got.size, received, got.resumed_from)


class _NotPublished(FleetgapError):
    """The source answered 404/410: no such file (for a `.sha512`: no such artifact; for
    an `.asc`, a defect of the source all the same)."""


def _sidecar(net: Net, url: str) -> bytes:
    try:
        return net.get_bytes(url, limit=1 << 20)
    except NetError as exc:
        kind = url.rsplit("?", 1)[0].rsplit(".", 1)[-1]
        error = _NotPublished if exc.status in (404, 410) else FleetgapError
        raise error(f"cannot fetch .{kind} ({exc.reason}) from {url}") from None


def _reason(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
