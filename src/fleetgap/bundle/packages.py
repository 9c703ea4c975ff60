"""Fetch integration packages with their `.sig`, verified before they are placed.

The `.sig` comes first (small; one no trusted key can check fails before the download);
the zip is downloaded, resuming, into a `.part` file beside nothing a reader sees; its
SHA-512 pass is the signature's hash when the signature is SHA-512, as Elastic's are.
Only then are the `.sig` and, last, the zip moved into place. A pair already in place is
verified again and kept if it verifies (the Go `distribution` tool's skip rule).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from fleetgap.bundle.resolve import PackageRef, package_url
from fleetgap.errors import FleetgapError
from fleetgap.net import Net, Progress, discard_part
from fleetgap.pgp.keys import PublicKey
from fleetgap.pgp.signatures import (
    SignatureError,
    SignedData,
    SignedDigests,
    check_signers,
    parse_detached_signature,
    verify_digests,
    verify_file,
)
from fleetgap.store import atomic_write_bytes, place_file

_SIG_LIMIT = 1 << 20
FileProgress = Callable[[str], Progress | None]


@dataclass(frozen=True)
class Target:
    ref: PackageRef
    zip_path: Path
    sig_path: Path


@dataclass(frozen=True)
class Fetched:
    target: Target
    key: PublicKey | None  # the key that verified the zip; None when it was refused
    reused: bool = False  # already in place and valid: nothing was downloaded
    problem: str = ""  # why the package was refused


@dataclass(frozen=True)
class PackageFetcher:
    net: Net
    address: str  # the registry the refs' paths are relative to
    trusted: tuple[PublicKey, ...]
    incoming: Path  # where partial downloads wait (never where readers look)
    progress: FileProgress | None = None

    def fetch_all(self, targets: Sequence[Target], parallel: int = 4) -> list[Fetched]:
        with ThreadPoolExecutor(max_workers=max(1, parallel)) as pool:
            return list(pool.map(self.fetch, targets))

    def fetch(self, target: Target) -> Fetched:
        ref = target.ref
        try:
            if target.zip_path.is_file() and target.sig_path.is_file():
                try:
                    signature = target.sig_path.read_bytes()
                    return Fetched(
                        target, verify_file(target.zip_path, signature, self.trusted), True
                    )
                except SignatureError:
                    pass  # a copy in place that does not verify is fetched again
            return Fetched(target, self._download(target))
        except (FleetgapError, OSError) as exc:
            return Fetched(target, None, problem=f"package {ref.name} {ref.version}: {_line(exc)}")

    def _download(self, target: Target) -> PublicKey:
        sig_url = package_url(self.address, target.ref.signature_path)
        zip_url = package_url(self.address, target.ref.download)
        signature = self.net.get_bytes(sig_url, limit=_SIG_LIMIT)
        try:
            parsed = parse_detached_signature(signature)
            check_signers(parsed, self.trusted)
        except SignatureError as exc:
            raise FleetgapError(f"{sig_url} does not verify: {exc}") from None
        part = self.incoming / (target.zip_path.name + ".part")
        bar = self.progress(target.zip_path.name) if self.progress else None
        for attempt in (1, 2):
            got = self.net.download(zip_url, part, bar)
            try:
                digests = SignedDigests(SignedData(path=part), got.digest)
                key = verify_digests(digests, parsed, self.trusted)
                break
            except SignatureError as exc:
                discard_part(part)
                if attempt == 2 or not got.resumed_from:
                    raise FleetgapError(f"{sig_url} does not verify: {exc}") from None
                # else the kept part may predate an upstream change: once more, afresh
        atomic_write_bytes(target.sig_path, signature)
        place_file(part, target.zip_path)
        discard_part(part)
        return key


def _line(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return f"{exc.strerror}: {exc.filename}" if exc.filename else exc.strerror
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__
