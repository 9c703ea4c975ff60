"""Elastic Defend's protection artifacts: the manifest zip Endpoint fetches and what it lists.

Endpoint asks `{base_url}/downloads/endpoint/manifest/artifacts-<version>.zip`; the zip holds
`manifest.json` (and, from Elastic, `manifest.sig`: an RSA SHA-256 signature of those bytes).
`manifest.json` maps artifact names to entries: `relative_url` (a path on the same host),
`encoded_size`/`encoded_sha256` (the bytes served), `decoded_size`/`decoded_sha256` (after
`compression_algorithm`, "zlib" or "none") and `encryption_algorithm` ("none").
docs/defend-artifacts.md says where each point was confirmed.

Everything in a manifest comes from outside: a path that is not a plain path under
`/downloads/`, a size over the limits below, a name or version with odd characters is
refused with one line (`DefendError`) before anything is fetched or written.
"""

from __future__ import annotations

import functools
import hashlib
import io
import json
import re
import zipfile
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from fleetgap.artifacts.catalogue import load_catalogue
from fleetgap.errors import FleetgapError
from fleetgap.store import is_temporary_name

DEFAULT_SOURCE = "https://artifacts.security.elastic.co"
MANIFEST_FOLDER = "downloads/endpoint/manifest"  # in a data directory and in the URL
MANIFEST_MEMBER = "manifest.json"
SIGNATURE_MEMBER = "manifest.sig"
MAX_MANIFEST_ZIP = 16 << 20  # Elastic's are a few KiB
MAX_MANIFEST_JSON = 16 << 20
MAX_SIGNATURE = 64 << 10
MAX_ENTRIES = 10_000
MAX_ARTIFACT_BYTES = 1 << 30  # encoded; Elastic's largest (malware models) are tens of MiB
MAX_DECODED_BYTES = 4 << 30
COMPRESSIONS = ("zlib", "none")

_VERSION = re.compile(r"^\d+\.\d+\.\d+(?:-[0-9A-Za-z.]+)?$")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$")
_MANIFEST_VERSION = re.compile(r"^[0-9A-Za-z][0-9A-Za-z.+_-]{0,63}$")
_URL_SEGMENT = re.compile(r"^[A-Za-z0-9._~+-]+$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


class DefendError(FleetgapError):
    """A Defend manifest or artifact that is malformed, hostile or does not match."""


@dataclass(frozen=True)
class DefendEntry:
    name: str
    relative_url: str  # "/downloads/…", checked by check_relative_url
    encoded_size: int
    encoded_sha256: str
    decoded_size: int
    decoded_sha256: str
    compression: str  # "zlib" | "none"

    @property
    def data_path(self) -> str:
        """Where it lives in a data directory: "downloads/…"."""
        return self.relative_url[1:]


@dataclass(frozen=True)
class DefendManifest:
    manifest_version: str
    schema_version: str
    entries: tuple[DefendEntry, ...]  # sorted by name
    manifest_json: bytes
    signature: bytes | None  # manifest.sig, when the zip carries one

    def by_path(self) -> dict[str, DefendEntry]:
        return {entry.data_path: entry for entry in self.entries}


def check_version(version: str) -> str:
    if not _VERSION.match(version):
        raise DefendError(f"not an Endpoint version: {version!r} (e.g. 9.1.0)")
    return version


def manifest_path(version: str) -> str:
    """The manifest zip's path in a data directory (its URL path is "/" + this)."""
    return f"{MANIFEST_FOLDER}/artifacts-{check_version(version)}.zip"


def manifest_url(source: str, version: str) -> str:
    return f"{source.rstrip('/')}/{manifest_path(version)}"


def artifact_url(source: str, entry: DefendEntry) -> str:
    return source.rstrip("/") + entry.relative_url


def check_relative_url(url: object) -> str:
    """A plain absolute path under /downloads/: no query, no escapes, no `..`, no hidden or
    temporary names, nothing but unreserved characters (it becomes a file path)."""
    if not isinstance(url, str) or len(url) > 1024:
        raise DefendError(f"relative_url {_shown(url)} is not a path of at most 1024 characters")
    segments = url.split("/")
    if segments[:2] != ["", "downloads"] or len(segments) < 4:
        raise DefendError(f"relative_url {_shown(url)} is not a path under /downloads/")
    for segment in segments[2:]:
        if segment in (".", "..") or not _URL_SEGMENT.match(segment) or is_temporary_name(segment):
            raise DefendError(f"relative_url {_shown(url)} is not a plain path under /downloads/")
    inside = "/".join(segments[1:])
    if inside.lower() == MANIFEST_FOLDER or inside.lower().startswith(MANIFEST_FOLDER + "/"):
        raise DefendError(f"relative_url {_shown(url)} points into the manifests' folder")
    if inside.lower().endswith((".sha512", ".asc", ".sig")) or _binary_folder(
        inside.removeprefix("downloads/")
    ):
        # where agent binaries and their .sha512/.asc live: a Defend file there would be
        # served as (or block) a binary Elastic signed
        raise DefendError(f"relative_url {_shown(url)} points where agent binaries live")
    return url


def _binary_folder(path: str) -> bool:
    lowered = path.lower()
    return any(
        lowered == folder or lowered.startswith(folder + "/") for folder in _binary_folders()
    )


@functools.cache
def _binary_folders() -> frozenset[str]:
    """The catalogue's product folders under /downloads/ (beats/elastic-agent, fleet-server…)."""
    return frozenset(p.directory.lower() for p in load_catalogue().products.values())


def parse_manifest_zip(data: bytes, origin: str) -> DefendManifest:
    """Read and check a manifest zip's bytes; DefendError names `origin` and the problem."""
    if len(data) > MAX_MANIFEST_ZIP:
        raise DefendError(f"{origin}: {len(data)} bytes, more than {MAX_MANIFEST_ZIP}")
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            manifest_json = _member(archive, MANIFEST_MEMBER, MAX_MANIFEST_JSON, origin)
            if manifest_json is None:
                raise DefendError(f"{origin}: no {MANIFEST_MEMBER} in the zip")
            signature = _member(archive, SIGNATURE_MEMBER, MAX_SIGNATURE, origin)
    except (
        zipfile.BadZipFile,
        zlib.error,
        EOFError,
        NotImplementedError,
        ValueError,
        RuntimeError,  # an encrypted member: "password required for extraction"
    ) as exc:
        raise DefendError(f"{origin}: not a readable zip: {exc}") from None
    try:
        raw = json.loads(manifest_json, object_pairs_hook=_no_duplicate_keys)
    except (ValueError, RecursionError) as exc:  # bad UTF-8 or JSON, an integer of 4301+ digits
        raise DefendError(f"{origin}: {MANIFEST_MEMBER} is not JSON: {exc}") from None
    if not isinstance(raw, dict):
        raise DefendError(f"{origin}: {MANIFEST_MEMBER} is not a JSON object")
    manifest_version = raw.get("manifest_version")
    if not isinstance(manifest_version, str) or not _MANIFEST_VERSION.match(manifest_version):
        raise DefendError(f"{origin}: manifest_version {_shown(manifest_version)} is not valid")
    schema_version = raw.get("schema_version", "")
    if not isinstance(schema_version, str) or len(schema_version) > 16:
        raise DefendError(f"{origin}: schema_version {_shown(schema_version)} is not valid")
    artifacts = raw.get("artifacts")
    if not isinstance(artifacts, dict):
        raise DefendError(f"{origin}: {MANIFEST_MEMBER} has no artifacts object")
    if len(artifacts) > MAX_ENTRIES:
        raise DefendError(f"{origin}: more than {MAX_ENTRIES} artifacts")
    entries = [_entry(name, fields, origin) for name, fields in artifacts.items()]
    seen: dict[str, str] = {}
    for entry in entries:
        other = seen.setdefault(entry.data_path.casefold(), entry.name)
        if other != entry.name:
            raise DefendError(
                f"{origin}: artifacts {other} and {entry.name} share relative_url "
                f"{entry.relative_url}"
            )
    return DefendManifest(
        manifest_version,
        schema_version,
        tuple(sorted(entries, key=lambda e: e.name)),
        manifest_json,
        signature,
    )


def read_manifest_zip(path: Path, origin: str | None = None) -> DefendManifest:
    where = origin or str(path)
    try:
        size = path.stat().st_size
        if size > MAX_MANIFEST_ZIP:
            raise DefendError(f"{where}: {size} bytes, more than {MAX_MANIFEST_ZIP}")
        return parse_manifest_zip(path.read_bytes(), where)
    except OSError as exc:
        raise DefendError(f"{where}: cannot read: {exc.strerror or exc}") from None


def verify_signature(manifest: DefendManifest, public_key_pem: bytes, origin: str) -> None:
    """Check `manifest.sig` (RSA PKCS#1 v1.5, SHA-256, over manifest.json's bytes) with the PEM
    key `*.advanced.artifacts.global.public_key` would hold."""
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import padding, rsa

    if manifest.signature is None:
        raise DefendError(f"{origin}: the zip carries no {SIGNATURE_MEMBER}, but a key is given")
    try:
        key = serialization.load_pem_public_key(public_key_pem)
    except (ValueError, TypeError) as exc:
        raise DefendError(f"the Defend public key is not a PEM public key: {exc}") from None
    if not isinstance(key, rsa.RSAPublicKey):
        raise DefendError("the Defend public key is not an RSA key")
    try:
        key.verify(manifest.signature, manifest.manifest_json, padding.PKCS1v15(), hashes.SHA256())
    except InvalidSignature:
        raise DefendError(f"{origin}: {SIGNATURE_MEMBER} does not verify with the key") from None


def check_artifact_file(path: Path, entry: DefendEntry, origin: str) -> None:
    """The file's size and SHA-256 as the entry's encoded ones, and, decompressed, its
    decoded ones (decompression stops past decoded_size: no zip bomb)."""
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise DefendError(f"{origin}: cannot read: {exc.strerror or exc}") from None
    if size != entry.encoded_size:
        raise DefendError(
            f"{origin}: {size} bytes, the manifest entry {entry.name} says {entry.encoded_size}"
        )
    check = ArtifactCheck(entry, origin)
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            check.update(chunk)
    check.finish()


class ArtifactCheck:
    """An artifact's bytes, fed as they arrive, against its manifest entry: encoded size and
    SHA-256, then decoded size and SHA-256 (decompression never goes past decoded_size)."""

    def __init__(self, entry: DefendEntry, origin: str) -> None:
        self.entry, self.origin = entry, origin
        self.encoded, self.decoded = hashlib.sha256(), hashlib.sha256()
        self.decoder = zlib.decompressobj() if entry.compression == "zlib" else None
        self.size = 0
        self.out = 0

    def update(self, chunk: bytes) -> None:
        self.size += len(chunk)
        if self.size > self.entry.encoded_size:
            raise DefendError(f"{self.origin}: more than {self.entry.encoded_size} bytes")
        self.encoded.update(chunk)
        if self.decoder is None:
            self._decoded(chunk)
            return
        try:
            piece = self.decoder.decompress(chunk, self.entry.decoded_size - self.out + 1)
        except zlib.error as exc:
            raise DefendError(f"{self.origin}: not zlib data: {exc}") from None
        if self.decoder.unconsumed_tail:
            raise DefendError(
                f"{self.origin}: decodes to more than {self.entry.decoded_size} bytes"
            )
        self._decoded(piece)

    def finish(self) -> None:
        entry = self.entry
        if self.decoder is not None:
            try:
                self._decoded(self.decoder.flush())
            except zlib.error as exc:
                raise DefendError(f"{self.origin}: not zlib data: {exc}") from None
            if not self.decoder.eof:
                raise DefendError(f"{self.origin}: the zlib stream is truncated")
        encoded = self.encoded.hexdigest()
        if self.size != entry.encoded_size or encoded != entry.encoded_sha256:
            raise DefendError(
                f"{self.origin}: {self.size} bytes with SHA-256 {encoded}, the manifest entry "
                f"{entry.name} says {entry.encoded_size} bytes, {entry.encoded_sha256}"
            )
        decoded = self.decoded.hexdigest()
        if self.out != entry.decoded_size or decoded != entry.decoded_sha256:
            raise DefendError(
                f"{self.origin}: decodes to {self.out} bytes with SHA-256 {decoded}, the "
                f"manifest entry {entry.name} says {entry.decoded_size} bytes, "
                f"{entry.decoded_sha256}"
            )

    def _decoded(self, piece: bytes) -> None:
        self.out += len(piece)
        self.decoded.update(piece)


def _member(archive: zipfile.ZipFile, name: str, limit: int, origin: str) -> bytes | None:
    if sum(1 for info in archive.infolist() if info.filename == name) > 1:
        # zipfile reads the last one, another reader may take the first: one meaning only
        raise DefendError(f"{origin}: the zip holds {name} more than once")
    try:
        info = archive.getinfo(name)
    except KeyError:
        return None
    if info.file_size > limit:
        raise DefendError(f"{origin}: {name} is {info.file_size} bytes, more than {limit}")
    with archive.open(info) as handle:
        data = handle.read(limit + 1)
    if len(data) > limit:
        raise DefendError(f"{origin}: {name} is more than {limit} bytes")
    return data


def _no_duplicate_keys(pairs: list[tuple[str, object]]) -> dict[str, object]:
    """json.loads keeps the last of two equal keys, another parser may keep the first: what
    fleetgap checks and what Endpoint reads must be the same entry."""
    document: dict[str, object] = {}
    for key, value in pairs:
        if key in document:
            raise ValueError(f"key {_shown(key)} appears twice in one object")
        document[key] = value
    return document


def _entry(name: object, fields: object, origin: str) -> DefendEntry:
    if not isinstance(name, str) or not _NAME.match(name):
        raise DefendError(f"{origin}: artifact name {_shown(name)} is not valid")
    where = f"{origin}: artifact {name}"
    if not isinstance(fields, Mapping):
        raise DefendError(f"{where}: its entry is not an object")
    try:
        relative_url = check_relative_url(fields.get("relative_url"))
    except DefendError as exc:
        raise DefendError(f"{where}: {exc}") from None
    compression = fields.get("compression_algorithm")
    if compression not in COMPRESSIONS:
        raise DefendError(f"{where}: compression_algorithm {_shown(compression)} is not known")
    encryption = fields.get("encryption_algorithm", "none")
    if encryption != "none":
        raise DefendError(f"{where}: encryption_algorithm {_shown(encryption)} is not known")
    encoded_size = _size(fields, "encoded_size", MAX_ARTIFACT_BYTES, where)
    decoded_size = _size(fields, "decoded_size", MAX_DECODED_BYTES, where)
    if compression == "none" and encoded_size != decoded_size:
        raise DefendError(f"{where}: uncompressed, but encoded_size differs from decoded_size")
    return DefendEntry(
        name,
        relative_url,
        encoded_size,
        _sha256(fields, "encoded_sha256", where),
        decoded_size,
        _sha256(fields, "decoded_sha256", where),
        compression,
    )


def _size(fields: Mapping, key: str, limit: int, where: str) -> int:
    value = fields.get(key)
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= limit:
        raise DefendError(f"{where}: {key} {_shown(value)} is not a size of at most {limit}")
    return value


def _sha256(fields: Mapping, key: str, where: str) -> str:
    value = fields.get(key)
    if not isinstance(value, str) or not _SHA256.match(value):
        raise DefendError(f"{where}: {key} {_shown(value)} is not 64 lowercase hex digits")
    return value


def _shown(value: object) -> str:
    """A value from outside, safe to print: repr (escapes controls), cut short."""
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."
