"""The bundle manifest: what a bundle carries (or, for a delta, the whole state it leads to).

The manifest is the first tar member, `manifest.json`; its detached signature, when the
bundle is signed, is the second, `manifest.json.sig`. docs/bundle-format.md is the format's
description; this module is its one reader and writer, and refuses anything that does not
follow it (`ManifestError`, one line naming the field).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from functools import cached_property
from pathlib import PurePosixPath
from typing import Any

from fleetgap.artifacts.defend import MANIFEST_FOLDER
from fleetgap.errors import FleetgapError

FORMAT = "fleetgap-bundle"
FORMAT_VERSION = 1
MANIFEST_NAME = "manifest.json"
SIGNATURE_NAME = "manifest.json.sig"

# How the connected side verified a file before it went into the bundle.
VERIFIED_BY = (
    "openpgp-detached",  # a package zip, by its .sig
    "sha512+openpgp-detached",  # an artifact, by its .sha512 and .asc
    "sidecar",  # a .sig/.asc/.sha512 itself (it is what verifies another file)
    "pinned-fingerprint",  # a key file, by its fingerprint
    "pip",  # a wheel of fleetgap's kit under kit/, fetched and checked by pip
    "defend-manifest",  # an Elastic Defend manifest zip (artifacts/defend.py), read first
    "defend-manifest-entry",  # a protection artifact, by size and SHA-256 in `vouched_by`
    "none",
)
DEFEND_MANIFESTS = MANIFEST_FOLDER + "/"
TOP_FOLDERS = ("packages", "downloads", "keys", "kit")  # what a bundle may write into a data dir
MAX_MANIFEST_BYTES = 256 << 20  # a bound on what a reader holds in memory

_SHA256 = re.compile(r"[0-9a-f]{64}")
_FINGERPRINT = re.compile(r"[0-9A-F]{16,64}")
BUNDLE_ID = re.compile(r"[0-9a-f]{32}")


class ManifestError(FleetgapError):
    """A manifest that does not follow the format; the message names the field."""


@dataclass(frozen=True)
class FileEntry:
    path: str  # posix, relative to the data dir: "packages/nginx-1.2.0.zip"
    size: int
    sha256: str  # lowercase hex
    verified_by: str  # one of VERIFIED_BY
    key_fingerprint: str | None  # uppercase hex fingerprint of the key that verified it
    in_bundle: bool = True  # False in a delta: the closed side must already hold it
    vouched_by: str | None = None  # a protection artifact: the Defend manifest listing it

    def as_dict(self) -> dict[str, Any]:
        fields = asdict(self)
        if self.vouched_by is None:
            del fields["vouched_by"]  # only protection artifacts have one
        return fields


@dataclass(frozen=True)
class Manifest:
    bundle_id: str
    created: str  # RFC 3339 UTC, "2026-01-31T12:00:00Z"
    sequence: int
    fleetgap_version: str
    selection: Mapping[str, Any]
    files: tuple[FileEntry, ...]
    base: Mapping[str, Any] | None = None  # a delta: the receipt it was made against
    delta: bool = False
    format: str = FORMAT
    format_version: int = FORMAT_VERSION

    @cached_property
    def by_path(self) -> dict[str, FileEntry]:
        return {entry.path: entry for entry in self.files}

    def entry(self, path: str) -> FileEntry | None:
        return self.by_path.get(path)

    @property
    def carried(self) -> tuple[FileEntry, ...]:
        """The files that are members of the tar."""
        return tuple(entry for entry in self.files if entry.in_bundle)

    @property
    def carried_bytes(self) -> int:
        return sum(entry.size for entry in self.carried)

    def as_dict(self) -> dict[str, Any]:
        return {
            "format": self.format,
            "format_version": self.format_version,
            "bundle_id": self.bundle_id,
            "created": self.created,
            "sequence": self.sequence,
            "fleetgap_version": self.fleetgap_version,
            "selection": dict(self.selection),
            "delta": self.delta,
            "base": dict(self.base) if self.base is not None else None,
            "files": [entry.as_dict() for entry in self.files],
        }


def encode_manifest(manifest: Manifest) -> bytes:
    """The manifest's bytes (what the signature covers): UTF-8 JSON, keys sorted."""
    validate(manifest)
    text = json.dumps(manifest.as_dict(), indent=1, sort_keys=True, ensure_ascii=False)
    return (text + "\n").encode()


def decode_manifest(data: bytes) -> Manifest:
    """Parse and validate; raises ManifestError naming what is wrong."""
    if len(data) > MAX_MANIFEST_BYTES:
        raise ManifestError(f"manifest is {len(data)} bytes, more than {MAX_MANIFEST_BYTES}")
    try:
        raw = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ManifestError(f"manifest is not JSON: {exc}") from None
    if not isinstance(raw, dict):
        raise ManifestError("manifest is not a JSON object")
    if raw.get("format") != FORMAT:
        raise ManifestError(f"not a fleetgap bundle manifest (format {raw.get('format')!r})")
    if raw.get("format_version") != FORMAT_VERSION:
        raise ManifestError(
            f"manifest format_version {raw.get('format_version')!r} is not supported "
            f"(this fleetgap reads {FORMAT_VERSION}); use a newer fleetgap"
        )
    known = {
        "format", "format_version", "bundle_id", "created", "sequence", "fleetgap_version",
        "selection", "delta", "base", "files",
    }  # fmt: skip
    unknown = sorted(set(raw) - known)
    if unknown:
        raise ManifestError(f"manifest has unknown field(s): {', '.join(unknown)}")
    files = raw.get("files")
    if not isinstance(files, list):
        raise ManifestError("manifest field files must be a list")
    manifest = Manifest(
        bundle_id=_typed(raw, "bundle_id", str),
        created=_typed(raw, "created", str),
        sequence=_typed(raw, "sequence", int),
        fleetgap_version=_typed(raw, "fleetgap_version", str),
        selection=_typed(raw, "selection", dict),
        files=tuple(_entry(item, index) for index, item in enumerate(files)),
        base=_typed(raw, "base", dict, optional=True),
        delta=_typed(raw, "delta", bool),
    )
    validate(manifest)
    return manifest


def validate(manifest: Manifest) -> None:
    """Everything a reader relies on: ids, paths that stay inside the data dir, no duplicates."""
    if not BUNDLE_ID.fullmatch(manifest.bundle_id):
        raise ManifestError(f"manifest bundle_id {manifest.bundle_id!r} is not 32 hex digits")
    if manifest.sequence < 0:
        raise ManifestError(f"manifest sequence {manifest.sequence} is negative")
    if manifest.delta != (manifest.base is not None or len(manifest.carried) < len(manifest.files)):
        raise ManifestError("manifest delta flag disagrees with its base and in_bundle entries")
    seen: set[str] = set()
    folded: set[str] = set()
    for entry in manifest.files:
        check_path(entry.path)
        if entry.path in seen:
            raise ManifestError(f"manifest lists {entry.path} twice")
        seen.add(entry.path)
        if entry.path.casefold() in folded:  # one file where names ignore case (macOS, FAT)
            raise ManifestError(f"manifest lists {entry.path} twice, with different case")
        folded.add(entry.path.casefold())
        if entry.size < 0:
            raise ManifestError(f"manifest size of {entry.path} is negative")
        if not _SHA256.fullmatch(entry.sha256):
            raise ManifestError(f"manifest sha256 of {entry.path} is not 64 lowercase hex digits")
        if entry.verified_by not in VERIFIED_BY:
            raise ManifestError(
                f"manifest verified_by of {entry.path} is {entry.verified_by!r}, "
                f"expected one of {', '.join(VERIFIED_BY)}"
            )
        if (entry.verified_by == "defend-manifest-entry") != (entry.vouched_by is not None):
            raise ManifestError(
                f"manifest vouched_by of {entry.path} goes with defend-manifest-entry only"
            )
        if entry.vouched_by is not None and not entry.vouched_by.startswith(DEFEND_MANIFESTS):
            raise ManifestError(f"manifest vouched_by of {entry.path} is not a Defend manifest")
        fingerprint = entry.key_fingerprint
        if fingerprint is not None and not _FINGERPRINT.fullmatch(fingerprint):
            raise ManifestError(f"manifest key_fingerprint of {entry.path} is not uppercase hex")
    # A file and a folder of the same name cannot both be placed.
    for path in seen:
        for parent in PurePosixPath(path).parents:
            if str(parent).casefold() in folded:
                raise ManifestError(f"manifest lists {parent} both as a file and as a folder")


def check_path(path: str) -> None:
    """A relative posix path under packages/, downloads/ or keys/, with no `..`, no hidden or
    temporary names (those are work in progress in a data dir, store.is_temporary_name)."""
    if not isinstance(path, str) or not path:
        raise ManifestError("manifest has an empty path")
    if path.startswith("/") or "\\" in path or "\x00" in path:
        raise ManifestError(f"manifest path {path!r} is absolute or not a posix path")
    parts = path.split("/")
    if any(part in ("", ".", "..") for part in parts):
        raise ManifestError(f"manifest path {path!r} has an empty, '.' or '..' component")
    if parts[0] not in TOP_FOLDERS or len(parts) < 2:
        raise ManifestError(
            f"manifest path {path!r} is not inside {', '.join(f + '/' for f in TOP_FOLDERS)}"
        )
    from fleetgap.store import is_temporary_name

    if any(is_temporary_name(part) for part in parts):
        raise ManifestError(f"manifest path {path!r} has a hidden or temporary name")


def _entry(item: object, index: int) -> FileEntry:
    if not isinstance(item, dict):
        raise ManifestError(f"manifest files[{index}] is not an object")
    unknown = sorted(set(item) - {f for f in FileEntry.__dataclass_fields__})
    if unknown:
        raise ManifestError(f"manifest files[{index}] has unknown field(s): {', '.join(unknown)}")
    where = f"files[{index}]"
    return FileEntry(
        path=_typed(item, "path", str, where=where),
        size=_typed(item, "size", int, where=where),
        sha256=_typed(item, "sha256", str, where=where),
        verified_by=_typed(item, "verified_by", str, where=where),
        key_fingerprint=_typed(item, "key_fingerprint", str, where=where, optional=True),
        in_bundle=_typed(item, "in_bundle", bool, where=where),
        vouched_by=(_typed(item, "vouched_by", str, where=where) if "vouched_by" in item else None),
    )


def _typed(raw: Mapping[str, Any], name: str, kind: type, *, where: str = "", optional=False):
    label = f"manifest {where + '.' if where else ''}{name}"
    if name not in raw:
        raise ManifestError(f"{label} is missing")
    value = raw[name]
    if value is None and optional:
        return None
    # bool is an int in Python; a manifest's sizes and sequence are not booleans
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise ManifestError(f"{label} must be {kind.__name__}, got {type(value).__name__}")
    return value


def sorted_entries(entries: Sequence[FileEntry]) -> tuple[FileEntry, ...]:
    """The order files go into the tar: keys first, then sidecars, then what they verify, so
    that a reader holds every key and signature before the bytes it checks stream by."""
    return tuple(sorted(entries, key=lambda e: (member_rank(e.path), e.path)))


SIDECAR_SUFFIXES = (".sig", ".asc", ".sha512")


def member_rank(path: str) -> int:
    if path.startswith("keys/"):
        return 0
    if path.endswith(SIDECAR_SUFFIXES) or path.startswith(DEFEND_MANIFESTS):
        return 1  # a Defend manifest vouches for the protection artifacts after it
    return 2
