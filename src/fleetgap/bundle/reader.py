"""Read a bundle as a stream: every byte once, every member checked against the manifest.

Memory stays bounded: members go by in chunks (to a staging folder, or nowhere when only
verifying). Each check is reported as a `Check`, one line each for auditors.

Not yet here (issue #9): the `.sig`/`.sha512`/`.asc` checks of packages and artifacts
against the carried and pinned keys; today the members are checked by SHA-256 against the
(signed) manifest only.
"""

from __future__ import annotations

import hashlib
import tarfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from fleetgap.bundle.manifest import (
    MANIFEST_NAME,
    MAX_MANIFEST_BYTES,
    SIGNATURE_NAME,
    Manifest,
    decode_manifest,
)
from fleetgap.bundle.parts import PartError, PayloadReader, open_parts
from fleetgap.errors import FleetgapError
from fleetgap.pgp.keys import PublicKey
from fleetgap.pgp.signatures import SignatureError, verify_bytes

_CHUNK = 1 << 20


class BundleError(FleetgapError):
    """A bundle that fails a check; the message names the member or part."""


@dataclass(frozen=True)
class Check:
    subject: str
    method: str
    detail: str

    def line(self) -> str:
        return f"ok  {self.subject}: {self.method}: {self.detail}"


@dataclass(frozen=True)
class ReadResult:
    manifest: Manifest
    signer: PublicKey | None
    checks: tuple[Check, ...]


def read_bundle(
    paths: Sequence[Path],
    *,
    trust_keys: Sequence[PublicKey] = (),
    report: Callable[[Check], None] = lambda check: None,
) -> ReadResult:
    """Stream the bundle, checking it all; raises BundleError/PartError at the first problem
    (with the damaged part named too, so that it can be re-sent alone)."""
    parts = open_parts(paths)
    reader = PayloadReader(parts)
    checks: list[Check] = []

    def note(check: Check) -> None:
        checks.append(check)
        report(check)

    try:
        manifest, signer = _read_all(reader, trust_keys, note, str(parts[0].path))
        reader.drain()
    except (BundleError, tarfile.TarError, EOFError) as exc:
        damaged = reader.damaged_parts()
        problem = str(exc) if isinstance(exc, BundleError) else ""
        if damaged:
            raise PartError(f"{problem}; {damaged[0]}" if problem else damaged[0]) from None
        if isinstance(exc, BundleError):
            raise
        raise BundleError(f"{parts[0].path}: not a valid bundle tar: {exc}") from None
    finally:
        reader.close()
    if manifest.bundle_id != parts[0].trailer.bundle_id:
        raise BundleError(f"{parts[0].path}: its trailer names another bundle than its manifest")
    for part in parts:
        note(Check(str(part.path), "part sha256", f"{part.trailer.payload_sha256} matches"))
    return ReadResult(manifest, signer, tuple(checks))


def _read_all(reader, trust_keys, note, name) -> tuple[Manifest, PublicKey | None]:
    with tarfile.open(fileobj=reader, mode="r|") as tar:
        first = tar.next()
        if first is None or first.name != MANIFEST_NAME or not first.isreg():
            raise BundleError(f"{name}: the first member is not {MANIFEST_NAME}")
        if first.size > MAX_MANIFEST_BYTES:
            raise BundleError(f"{MANIFEST_NAME} is {first.size} bytes: too large")
        manifest_bytes = _read_member(tar, first)
        member = tar.next()
        signature = None
        if member is not None and member.name == SIGNATURE_NAME and member.isreg():
            signature = _read_member(tar, member)
            member = tar.next()
        signer = _check_signature(manifest_bytes, signature, trust_keys, note)
        manifest = decode_manifest(manifest_bytes)
        seen: set[str] = set()
        while member is not None:
            _check_member(tar, member, manifest, seen, note)
            member = tar.next()
        missing = [e.path for e in manifest.carried if e.path not in seen]
        if missing:
            raise BundleError(f"{missing[0]} is in the manifest but not in the bundle")
    return manifest, signer


def _check_signature(data, signature, trust_keys, note) -> PublicKey | None:
    if signature is None:
        if trust_keys:
            raise BundleError(f"{MANIFEST_NAME} is unsigned, but a trusted key was given")
        note(Check(MANIFEST_NAME, "openpgp-detached", "unsigned (not checked)"))
        return None
    if not trust_keys:
        note(Check(MANIFEST_NAME, "openpgp-detached", "signed, not checked (no --trust-key)"))
        return None
    try:
        key = verify_bytes(data, signature, list(trust_keys))
    except SignatureError as exc:
        raise BundleError(f"{SIGNATURE_NAME}: not signed by a trusted key: {exc}") from None
    note(Check(MANIFEST_NAME, f"openpgp-detached {SIGNATURE_NAME}", f"key {key.fingerprint}"))
    return key


def _check_member(tar, member: tarfile.TarInfo, manifest: Manifest, seen, note) -> None:
    name = member.name
    if member.type not in (tarfile.REGTYPE, tarfile.AREGTYPE):
        kind = {tarfile.SYMTYPE: "a symbolic link", tarfile.LNKTYPE: "a hard link",
                tarfile.CHRTYPE: "a device", tarfile.BLKTYPE: "a device",
                tarfile.DIRTYPE: "a directory", tarfile.FIFOTYPE: "a FIFO"}  # fmt: skip
        raise BundleError(f"member {name!r} is {kind.get(member.type, 'not a regular file')}")
    if name.startswith("/") or ".." in name.split("/"):
        raise BundleError(f"member {name!r} has an unsafe path (absolute or '..')")
    entry = manifest.entry(name)
    if entry is None or not entry.in_bundle:
        raise BundleError(f"member {name!r} is not in the manifest")
    if name in seen:
        raise BundleError(f"member {name!r} appears twice")
    seen.add(name)
    if member.size != entry.size:
        raise BundleError(f"{name} is {member.size} bytes, the manifest says {entry.size}")
    digest = hashlib.sha256()
    handle = tar.extractfile(member)
    assert handle is not None
    while chunk := handle.read(_CHUNK):
        digest.update(chunk)
    if digest.hexdigest() != entry.sha256:
        raise BundleError(
            f"{name}: SHA-256 {digest.hexdigest()} differs from the manifest's {entry.sha256}"
        )
    note(Check(name, "sha256", f"{entry.sha256} matches the manifest"))


def _read_member(tar: tarfile.TarFile, member: tarfile.TarInfo) -> bytes:
    handle = tar.extractfile(member)
    assert handle is not None
    return handle.read()
