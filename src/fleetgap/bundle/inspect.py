"""`bundle inspect`: the parts' trailers and the manifest, without reading the files.

Reading every byte and checking hashes and signatures is `bundle verify`'s job; inspect is
quick and trusts nothing: it only shows what the bundle claims.
"""

from __future__ import annotations

import tarfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fleetgap.bundle.manifest import (
    MANIFEST_NAME,
    MAX_MANIFEST_BYTES,
    SIGNATURE_NAME,
    Manifest,
    ManifestError,
    decode_manifest,
)
from fleetgap.bundle.parts import Part, PayloadReader, open_parts
from fleetgap.errors import FleetgapError


@dataclass(frozen=True)
class Inspection:
    parts: tuple[Part, ...]
    manifest: Manifest
    signed: bool

    def as_dict(self) -> dict[str, Any]:
        return {
            "parts": [
                {
                    "file": str(p.path),
                    "part": p.trailer.part,
                    "payload_size": p.trailer.payload_size,
                    "payload_sha256": p.trailer.payload_sha256,
                }
                for p in self.parts
            ],
            "signed": self.signed,
            "manifest": self.manifest.as_dict(),
        }


def inspect_bundle(paths: Sequence[Path]) -> Inspection:
    parts = open_parts(paths)
    reader = PayloadReader(parts)
    try:
        with tarfile.open(fileobj=reader, mode="r|") as tar:
            first = tar.next()
            if first is None or first.name != MANIFEST_NAME or not first.isreg():
                raise ManifestError(f"{parts[0].path}: the first member is not {MANIFEST_NAME}")
            if first.size > MAX_MANIFEST_BYTES:
                raise ManifestError(f"{MANIFEST_NAME} is {first.size} bytes: too large")
            handle = tar.extractfile(first)
            assert handle is not None
            manifest = decode_manifest(handle.read())
            second = tar.next()
            signed = second is not None and second.name == SIGNATURE_NAME
    except tarfile.TarError as exc:
        raise FleetgapError(f"{parts[0].path}: not a valid bundle tar: {exc}") from None
    finally:
        reader.close()
    if manifest.bundle_id != parts[0].trailer.bundle_id:
        raise FleetgapError(
            f"{parts[0].path}: trailer names bundle {parts[0].trailer.bundle_id}, its manifest "
            f"{manifest.bundle_id}"
        )
    return Inspection(tuple(parts), manifest, signed)
