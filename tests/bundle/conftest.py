"""A cache data dir with a signed package, a signed artifact and the key that signed them;
bundles are written from it with write_bundle, as `bundle create` does."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pysequoia
import pytest
from tests.builders import write_zip_package

from fleetgap.bundle.manifest import FileEntry
from fleetgap.pgp.keys import SecretKey
from fleetgap.pgp.package_signatures import sign_package
from fleetgap.pgp.sha512 import sidecar_line
from fleetgap.pgp.signatures import sign_file
from fleetgap.store import DataDir

ARTIFACT = "downloads/beats/elastic-agent/elastic-agent-9.1.0-linux-x86_64.tar.gz"


def _key(uid: str) -> SecretKey:
    return SecretKey(pysequoia.Tsk.generate(uid, cipher_suite=pysequoia.CipherSuite.RSA2k))


@pytest.fixture(scope="session")
def file_signer() -> SecretKey:
    """Plays Elastic's key: signs packages and artifacts."""
    return _key("test elastic <elastic@example.org>")


@pytest.fixture(scope="session")
def bundle_signer() -> SecretKey:
    return _key("bundle signer <signer@example.org>")


@pytest.fixture(scope="session")
def stranger() -> SecretKey:
    return _key("stranger <stranger@example.org>")


@pytest.fixture(scope="session")
def trust_files(tmp_path_factory, bundle_signer, stranger, file_signer) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("trust")
    out = {}
    for name, key in (("signer", bundle_signer), ("stranger", stranger), ("files", file_signer)):
        out[name] = folder / f"{name}.asc"
        out[name].write_text(key.public_key.armored)
    out["signer-secret"] = folder / "signer-secret.asc"
    out["signer-secret"].write_text(bundle_signer.armored)
    return out


def add_package(cache: DataDir, key: SecretKey, name: str, version: str) -> None:
    zip_path = write_zip_package(cache.packages, name, version)
    sign_package(zip_path, key)


def add_artifact(cache: DataDir, key: SecretKey, relative: str, size: int = 300_000) -> None:
    path = cache.root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(hashlib.sha512(relative.encode()).digest() * (size // 64))
    path.with_name(path.name + ".sha512").write_text(sidecar_line(path))
    sign_file(path, key)


def make_cache(root: Path, key: SecretKey) -> DataDir:
    cache = DataDir(root).ensure()
    add_package(cache, key, "nginx", "1.2.0")
    add_artifact(cache, key, ARTIFACT)
    (cache.keys / "GPG-KEY-elastic-agent").write_text(key.public_key.armored)
    return cache


def entries(cache: DataDir, key: SecretKey, have: dict[str, str] | None = None):
    """FileEntry for every file of the cache; those in `have` (path -> sha256) with the same
    hash are not carried (a delta)."""
    found = []
    for path in sorted(p for p in cache.root.rglob("*") if p.is_file()):
        relative = path.relative_to(cache.root).as_posix()
        if relative.startswith("state/"):
            continue
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        if relative.startswith("keys/"):
            how, fingerprint = "pinned-fingerprint", key.fingerprint
        elif relative.endswith((".sig", ".asc", ".sha512")):
            how, fingerprint = "sidecar", None
        elif relative.startswith("packages/"):
            how, fingerprint = "openpgp-detached", key.fingerprint
        else:
            how, fingerprint = "sha512+openpgp-detached", key.fingerprint
        carried = not (have and have.get(relative) == digest)
        found.append(FileEntry(relative, path.stat().st_size, digest, how, fingerprint, carried))
    return found


def listing(root: Path) -> dict[str, str]:
    """Every file under root (state/ left out) with its SHA-256."""
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file() and not p.relative_to(root).as_posix().startswith("state/")
    }


from bundle.public_side import public  # noqa: E402, F401  (the loopback public side)
