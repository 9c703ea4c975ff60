"""A stand-in for artifacts.security.elastic.co, written into a data directory that
`fleetgap serve --data` then serves: per Endpoint version a manifest zip
(downloads/endpoint/manifest/artifacts-<version>.zip holding manifest.json and, when a key is
given, manifest.sig) and the artifacts it lists, zlib-compressed with encoded and decoded
sizes and SHA-256s, in the schema docs/defend-artifacts.md describes."""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
import zlib
from collections.abc import Mapping
from pathlib import Path

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa


def artifact_url(name: str) -> str:
    return f"/downloads/endpoint/artifacts/{name}.zlib"


def entry_for(name: str, payload: bytes) -> tuple[dict, bytes]:
    encoded = zlib.compress(payload)
    return {
        "relative_url": artifact_url(name),
        "compression_algorithm": "zlib",
        "encryption_algorithm": "none",
        "decoded_size": len(payload),
        "decoded_sha256": hashlib.sha256(payload).hexdigest(),
        "encoded_size": len(encoded),
        "encoded_sha256": hashlib.sha256(encoded).hexdigest(),
    }, encoded


def manifest_zip(
    manifest_version: str,
    entries: Mapping[str, dict],
    sign_with: rsa.RSAPrivateKey | None = None,
) -> bytes:
    document = json.dumps(
        {"manifest_version": manifest_version, "schema_version": "v1", "artifacts": entries},
        indent=2,
    ).encode()
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("manifest.json", document)
        if sign_with is not None:
            signature = sign_with.sign(document, padding.PKCS1v15(), hashes.SHA256())
            archive.writestr("manifest.sig", signature)
    return out.getvalue()


def publish(
    data: Path,
    version: str,
    manifest_version: str,
    artifacts: Mapping[str, bytes],
    sign_with: rsa.RSAPrivateKey | None = None,
) -> dict[str, dict]:
    """Write version's manifest and its artifacts under data/downloads/; the entries."""
    entries = {}
    for name, payload in artifacts.items():
        entry, encoded = entry_for(name, payload)
        target = data / entry["relative_url"].lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(encoded)
        entries[name] = entry
    write_manifest(data, version, manifest_zip(manifest_version, entries, sign_with))
    return entries


def write_manifest(data: Path, version: str, body: bytes) -> Path:
    path = data / "downloads/endpoint/manifest" / f"artifacts-{version}.zip"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(body)
    return path


# Two Endpoint versions sharing two of their artifacts.
SHARED = {
    "endpoint-exceptionlist-linux-v1": b'{"entries": []}' * 50,
    "diagnostic-configuration-v1": bytes(range(256)) * 40,
}
ONLY_91 = {"production-rules-linux-v1": b"rule 9.1 " * 3000}
ONLY_819 = {"production-rules-linux-v1-819": b"rule 8.19 " * 2000}
