"""Check every hash and signature of a bundle while it streams by, once.

The manifest's signature against the trusted signers (`--trust-key`, or the operator's keys in
DATA/state/bundle-signers/); each carried file's SHA-256 and size against the manifest (the
reader); each key file against its pinned fingerprint; each package zip against its `.sig`
and each artifact against its `.sha512` and `.asc`, as Kibana and the agent check them.

Keys for packages and artifacts: `--key` files, a carried key with Elastic's pinned
fingerprint, Elastic's key already in DATA/keys/, and — only when the manifest's signature
verified with a trusted signer, who vouches for them — every other key the bundle carries.
An unsigned bundle that carries any other key is refused: it cannot change what is trusted.
Sidecars and keys come before the files they check (manifest.sorted_entries), so they are
held in memory (each at most 1 MiB) and every file is read exactly once.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Generator, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from fleetgap.artifacts import defend
from fleetgap.bundle.hashpipe import HashPipe
from fleetgap.bundle.manifest import SIDECAR_SUFFIXES, SIGNATURE_NAME, FileEntry, Manifest
from fleetgap.bundle.reader import MAX_SIGNATURE_BYTES, BundleError, BundleReader, find_parts
from fleetgap.errors import FleetgapError
from fleetgap.pgp.keys import ELASTIC_FINGERPRINT, PublicKey, parse_public_key
from fleetgap.pgp.sha512 import compare_sha512, sidecar_sha512
from fleetgap.pgp.signatures import (
    SignedData,
    SignedDigests,
    check_signers,
    parse_detached_signature,
    verify_digests,
    verify_own_signature,
)

# kit/<distribution>-<version>(-<build>)-<python>-<abi>-<platform>.whl, nothing deeper.
_WHEEL_PATH = re.compile(
    r"kit/[A-Za-z0-9_.]+-[A-Za-z0-9_.!+]+(-[0-9][A-Za-z0-9_]*)?(-[A-Za-z0-9_.]+){3}\.whl"
)


def is_wheel_path(path: str) -> bool:
    return _WHEEL_PATH.fullmatch(path) is not None


_DEFEND_MANIFEST_PATH = re.compile(
    re.escape(defend.MANIFEST_FOLDER) + r"/artifacts-[0-9A-Za-z.+-]+\.zip"
)
# A sink consumes a member's chunks (load writes them to DATA/state/incoming/).
Sink = Callable[[FileEntry, Iterator[bytes]], None]


@dataclass(frozen=True)
class Check:
    """One line for auditors: what was checked, how, with which key."""

    what: str
    how: str
    key: str | None = None

    def line(self) -> str:
        return f"ok {self.what}: {self.how}" + (f" [key {self.key}]" if self.key else "")

    def as_dict(self) -> dict[str, str | None]:
        return {"what": self.what, "how": self.how, "key": self.key}


@dataclass(frozen=True)
class Trust:
    signers: Sequence[PublicKey] = ()  # who may sign a manifest
    file_keys: Sequence[PublicKey] = ()  # --key: extra keys for packages and artifacts
    allow_unsigned: bool = False


@dataclass
class Verified:
    manifest: Manifest
    signer: str | None = None
    checks: list[Check] = field(default_factory=list)


def verify_bundle(
    files: Sequence[Path],
    trust: Trust,
    *,
    sink: Sink | None = None,
    before_files: Callable[[Verified], None] | None = None,
    on_check: Callable[[Check], None] | None = None,
    present: Path | None = None,
) -> Verified:
    """Read the whole bundle; raises BundleError (or another FleetgapError) at the first
    problem. `before_files` sees the verified manifest before any file is read (load's
    pre-checks); `sink` receives each file's bytes as they are checked. A delta's keys and
    sidecars that it does not carry are read from `present` (a data dir) if there unchanged."""
    parts = find_parts(files)
    with BundleReader(parts) as reader:
        result = Verified(reader.manifest)

        def note(check: Check) -> None:
            result.checks.append(check)
            if on_check is not None:
                on_check(check)

        signer = _check_manifest_signature(reader, trust)
        result.signer = signer.fingerprint if signer is not None else None
        note(
            Check(
                "manifest.json",
                f"{len(reader.manifest_bytes)} bytes, format version "
                f"{reader.manifest.format_version}, bundle {reader.manifest.bundle_id}, "
                f"sequence {reader.manifest.sequence}",
            )
        )
        if signer is not None:
            note(
                Check(
                    SIGNATURE_NAME,
                    "OpenPGP detached signature of manifest.json by a trusted signer",
                    signer.fingerprint,
                )
            )
        else:
            note(Check(SIGNATURE_NAME, "none: bundle is unsigned, loaded with --allow-unsigned"))
        for entry in reader.manifest.files:
            check_verified_by(entry)
        if before_files is not None:
            before_files(result)
        checker = _FileChecker(trust, vouched=signer is not None, hashes=reader.hashes)
        if reader.manifest.delta and present is None:
            checker.delta_without_data = reader.manifest.bundle_id
        if present is not None:
            for check in checker.held_elsewhere(reader.manifest, present):
                note(check)
        for member in reader.members():
            chunks = checker.chunks(member.entry, member.chunks)
            if sink is not None:
                sink(member.entry, chunks)
            else:
                for _ in chunks:
                    pass
            for check in checker.checks_for(member.entry):
                note(check)
        reader.finish()
        for part in parts:
            t = part.trailer
            note(
                Check(
                    part.path.name,
                    f"part {t.part} of {t.parts}: {t.payload_size} bytes, "
                    f"SHA-256 {t.payload_sha256} as its trailer says",
                )
            )
        for entry in reader.manifest.files:
            if not entry.in_bundle:
                note(
                    Check(
                        entry.path,
                        "not carried (delta): must already be in the data "
                        f"directory with SHA-256 {entry.sha256}",
                    )
                )
    return result


def _hold(
    entry: FileEntry, chunks: Iterator[bytes], limit: int, what: str
) -> Generator[bytes, None, bytes]:
    """Pass a small file's chunks on and return its bytes (held whole, so at most `limit`)."""
    if entry.size > limit:
        raise BundleError(
            f"{entry.path}: {entry.size} bytes, too large for {what} (at most {limit})"
        )
    held: list[bytes] = []
    for chunk in chunks:
        held.append(chunk)
        yield chunk
    return b"".join(held)


def check_verified_by(entry: FileEntry) -> None:
    """What verifies a file is tied to its path, whatever the manifest says: a key file is
    one pinned or trusted certificate; under downloads/ a binary needs its .sha512 and .asc
    and only those sidecars are held as sidecars; `none` is never enough there."""
    path, kind = entry.path, entry.verified_by
    if path.startswith("keys/"):
        allowed = kind == "pinned-fingerprint"
    elif path.startswith("downloads/"):
        sidecar = path.endswith(SIDECAR_SUFFIXES)
        allowed = kind not in ("none", "pinned-fingerprint", "openpgp-detached") and (
            sidecar == (kind == "sidecar")
        )
    else:
        allowed = True
    if not allowed:
        raise BundleError(f"{path}: the manifest says it is verified by {kind!r}; refused there")


def _check_manifest_signature(reader: BundleReader, trust: Trust) -> PublicKey | None:
    where = reader._where()
    if reader.signature is None:
        if trust.allow_unsigned:
            return None
        raise BundleError(
            f"{where}: the bundle is not signed; use --allow-unsigned only if "
            "you trust how it reached you"
        )
    if not trust.signers:
        try:
            issuer = parse_detached_signature(reader.signature).issuer_key_id
        except FleetgapError:
            issuer = "unknown"
        raise BundleError(
            f"{where}: signed by key ID {issuer}, but no trusted signer: give "
            "--trust-key KEY (or put it in DATA/state/bundle-signers/)"
        )
    try:
        return verify_own_signature(reader.manifest_bytes, reader.signature, trust.signers)
    except FleetgapError as exc:
        raise BundleError(
            reader._with_damage(
                f"{where}: manifest signature does not verify with the trusted signer(s): {exc}"
            )
        ) from None


class _FileChecker:
    """Per file: the hashes its signature needs, fed from the same chunks as the SHA-256."""

    def __init__(self, trust: Trust, *, vouched: bool, hashes: HashPipe | None = None) -> None:
        self.trust = trust
        self.hashes = hashes  # None: hash in this thread
        self.vouched = vouched
        self.small: dict[str, bytes] = {}  # sidecars and keys, by path
        self.keys: list[PublicKey] = list(trust.file_keys)
        self.pending: dict[str, list[Check]] = {}
        self.defend: dict[str, dict[str, defend.DefendEntry]] = {}  # manifest → path → entry
        self.delta_without_data: str | None = None  # a delta's id, verified with no --data

    def chunks(self, entry: FileEntry, chunks: Iterator[bytes]) -> Iterator[bytes]:
        kind = entry.verified_by
        zipped = entry.path.startswith("packages/") and entry.path.endswith(".zip")
        if zipped and kind != "openpgp-detached":
            raise BundleError(
                f"{entry.path}: a package zip must be verified by its .sig "
                f"(the manifest says {kind!r})"
            )
        if kind == "none" and not self.vouched:
            # nothing at all vouches for it: an unsigned bundle carries only what is checked
            raise BundleError(f"{entry.path}: verified by nothing, in an unsigned bundle; refused")
        if entry.path.startswith("kit/") or kind == "pip":
            return self._wheel(entry, chunks)
        if kind == "openpgp-detached":
            return self._signed(entry, chunks, entry.path + ".sig", None)
        if kind == "sha512+openpgp-detached":
            return self._signed(entry, chunks, entry.path + ".asc", entry.path + ".sha512")
        if kind in ("defend-manifest", "defend-manifest-entry"):
            self._check_defend(entry)
            if kind == "defend-manifest":
                return self._defend_manifest(entry, chunks)
            return self._defend_artifact(entry, chunks)
        return self._held(entry, chunks)

    def held_elsewhere(self, manifest: Manifest, root: Path) -> list[Check]:
        checks = []
        for entry in manifest.files:
            small = entry.verified_by in ("sidecar", "pinned-fingerprint", "defend-manifest")
            path = root / entry.path
            if entry.in_bundle or not small or not path.is_file():
                continue
            if path.stat().st_size > max(MAX_SIGNATURE_BYTES, defend.MAX_MANIFEST_ZIP):
                continue
            data = path.read_bytes()
            if hashlib.sha256(data).hexdigest() != entry.sha256:
                continue
            self.small[entry.path] = data
            if entry.verified_by == "pinned-fingerprint":
                checks.append(self._key(entry, data, carried=False))
            if entry.verified_by == "defend-manifest":
                checks.append(self._parse_defend(entry, data))
        return checks

    def checks_for(self, entry: FileEntry) -> list[Check]:
        return self.pending.pop(entry.path, [])

    def _held(self, entry: FileEntry, chunks: Iterator[bytes]) -> Iterator[bytes]:
        what = f"a {entry.verified_by} file"
        data = yield from _hold(entry, chunks, MAX_SIGNATURE_BYTES, what)
        self.small[entry.path] = data
        checks = [
            Check(entry.path, f"SHA-256 {entry.sha256} and size {entry.size} as in the manifest")
        ]
        if entry.verified_by == "pinned-fingerprint":
            checks.append(self._key(entry, data))
        self.pending[entry.path] = checks

    def _check_defend(self, entry: FileEntry) -> None:
        """Elastic Defend's files carry no signature this side can check: the bundle's
        signature is what vouches for them, as for kit wheels; a manifest only at its path."""
        if not self.vouched:
            raise BundleError(
                f"{entry.path}: Elastic Defend's files cross only in a signed bundle (in an "
                "unsigned one nothing vouches for them)"
            )
        if entry.verified_by == "defend-manifest" and not _DEFEND_MANIFEST_PATH.fullmatch(
            entry.path
        ):
            raise BundleError(f"{entry.path}: not where a Defend manifest lives; refused")

    def _defend_manifest(self, entry: FileEntry, chunks: Iterator[bytes]) -> Iterator[bytes]:
        data = yield from _hold(entry, chunks, defend.MAX_MANIFEST_ZIP, "a Defend manifest")
        self.pending[entry.path] = [
            Check(entry.path, f"SHA-256 {entry.sha256} and size {entry.size} as in the manifest"),
            self._parse_defend(entry, data),
        ]

    def _parse_defend(self, entry: FileEntry, data: bytes) -> Check:
        try:
            parsed = defend.parse_manifest_zip(data, entry.path)
        except FleetgapError as exc:
            raise BundleError(str(exc)) from None
        self.defend[entry.path] = parsed.by_path()
        return Check(
            entry.path,
            f"Elastic Defend manifest {parsed.manifest_version}: {len(parsed.entries)} "
            "artifacts, every relative_url under /downloads/",
        )

    def _defend_artifact(self, entry: FileEntry, chunks: Iterator[bytes]) -> Iterator[bytes]:
        listed = self.defend.get(entry.vouched_by or "")
        if listed is None:
            raise BundleError(
                f"{entry.path}: its Defend manifest {entry.vouched_by} is not carried before "
                "it nor held unchanged, so it cannot be checked"
            )
        found = listed.get(entry.path)
        if found is None or (found.encoded_size, found.encoded_sha256) != (
            entry.size,
            entry.sha256,
        ):
            raise BundleError(
                f"{entry.path}: not listed with this size and SHA-256 in {entry.vouched_by}"
            )
        check = defend.ArtifactCheck(found, entry.path)
        try:
            for chunk in chunks:
                check.update(chunk)
                yield chunk
            check.finish()  # decoded size and SHA-256 too, as Endpoint will check them
        except defend.DefendError as exc:
            raise BundleError(str(exc)) from None
        self.pending[entry.path] = [
            Check(
                entry.path,
                f"size {entry.size} and SHA-256 {entry.sha256} as the manifest and the entry "
                f"{found.name} of {entry.vouched_by} give; decoded ({found.compression}) "
                f"{found.decoded_size} bytes with SHA-256 {found.decoded_sha256}",
            )
        ]

    def _delta_hint(self) -> str:
        if self.delta_without_data is None:
            return ""
        return (
            f"; bundle {self.delta_without_data} is a delta: verify it against the closed "
            "side it applies to, with --data DIR (the data directory it loads into)"
        )

    def _wheel(self, entry: FileEntry, chunks: Iterator[bytes]) -> Iterator[bytes]:
        """A kit wheel has no signature of its own: its SHA-256 in the manifest (checked by
        the reader) is what vouches for it, so the manifest's signature does."""
        if entry.verified_by != "pip" or not is_wheel_path(entry.path):
            raise BundleError(
                f"{entry.path}: under kit/ only wheels fetched by pip may be carried "
                f"(the manifest says {entry.verified_by!r})"
            )
        if not self.vouched:
            # other hosts pip-install what /fleetgap/simple/ serves: code, vouched for by nothing
            raise BundleError(
                f"{entry.path}: fleetgap's own wheels cross only in a signed bundle "
                "(in an unsigned one nothing vouches for them)"
            )
        yield from chunks
        self.pending[entry.path] = [
            Check(
                entry.path,
                f"wheel: SHA-256 {entry.sha256} and size {entry.size} as in the signed manifest",
            )
        ]

    def _key(self, entry: FileEntry, data: bytes, *, carried: bool = True) -> Check:
        try:
            key = parse_public_key(data)
        except FleetgapError as exc:
            raise BundleError(f"{entry.path}: not a usable OpenPGP key: {exc}") from None
        if entry.key_fingerprint is not None and key.fingerprint != entry.key_fingerprint:
            raise BundleError(
                f"{entry.path}: key fingerprint {key.fingerprint}, the manifest "
                f"pins {entry.key_fingerprint}"
            )
        given = {k.fingerprint for k in self.trust.file_keys}
        if key.fingerprint == ELASTIC_FINGERPRINT:
            how = "Elastic's pinned fingerprint"
        elif key.fingerprint in given:
            how = "a key given with --key"
        elif self.vouched:
            how = "fingerprint as in the signed manifest (vouched for by its signer)"
        elif carried:
            raise BundleError(
                f"{entry.path}: key {key.fingerprint} is not trusted: the bundle is unsigned "
                "and it is neither Elastic's key nor one given with --key"
            )
        else:
            return Check(entry.path, "OpenPGP key already here: not used (unsigned bundle)")
        self.keys.append(key)
        return Check(entry.path, f"OpenPGP key: {how}", key.fingerprint)

    def _signed(
        self, entry: FileEntry, chunks: Iterator[bytes], signature: str, sidecar: str | None
    ) -> Iterator[bytes]:
        name = PurePosixPath(entry.path).name
        if signature not in self.small or (sidecar is not None and sidecar not in self.small):
            missing = signature if signature not in self.small else sidecar
            raise BundleError(
                f"{entry.path}: its {missing} is not carried before it in the "
                "bundle, so it cannot be verified" + self._delta_hint()
            )
        if not self.keys:
            raise BundleError(
                f"{entry.path}: no key to verify it with: the bundle carries no "
                "trusted key; " + (self._delta_hint()[2:] or "give --key KEY")
            )
        expected = None
        if sidecar is not None:
            text = self.small[sidecar].decode("utf-8", "replace")
            expected = sidecar_sha512(Path(name), text, sidecar)
        try:
            parsed = parse_detached_signature(self.small[signature])
            signers = check_signers(parsed, self.keys)
        except FleetgapError as exc:
            raise BundleError(f"{entry.path}: {signature}: {exc}") from None
        digests = SignedDigests(SignedData())
        digests.start([s.fields for s in signers])
        for chunk in chunks:
            if self.hashes is not None:
                self.hashes.update(digests, chunk)
            else:
                digests.update(chunk)
            yield chunk
        if self.hashes is not None:
            self.hashes.wait()
        checks = [
            Check(entry.path, f"SHA-256 {entry.sha256} and size {entry.size} as in the manifest")
        ]
        if expected is not None:
            assert digests.sha512 is not None
            try:
                compare_sha512(Path(entry.path), expected, digests.sha512.hexdigest())
            except FleetgapError as exc:
                raise BundleError(f"{entry.path}: {exc}") from None
            checks.append(Check(entry.path, f"SHA-512 as {sidecar} gives"))
        try:
            key = verify_digests(digests, parsed, self.keys)
        except FleetgapError as exc:
            raise BundleError(f"{entry.path}: {signature} does not verify: {exc}") from None
        checks.append(Check(entry.path, f"OpenPGP detached signature {signature}", key.fingerprint))
        self.pending[entry.path] = checks
