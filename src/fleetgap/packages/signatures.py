"""`--verify-package-signatures`: a package is served only if its `.sig` verifies.

Beyond the Go registry, which only checks that a `.sig` exists. The signature covers the
zip's bytes, as Kibana checks it; a directory package is zipped on the fly, so no
signature can cover it and it is refused under this option.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from fleetgap.packages.model import PackageError
from fleetgap.pgp.keys import PublicKey, read_public_key
from fleetgap.pgp.signatures import SignatureError, verify_file


def package_signature_check(key_files: Sequence[Path]) -> Callable[[Path, Path], None]:
    """A check for `load_index`; raises FleetgapError now for an unreadable key file."""
    keys: list[PublicKey] = [read_public_key(Path(path)) for path in key_files]

    def check(package_path: Path, signature_path: Path) -> None:
        if package_path.is_dir():
            raise PackageError(
                "signature cannot be verified: it must cover a zip, and this package is a "
                "directory (zipped on the fly)"
            )
        try:
            signature = signature_path.read_bytes()
            verify_file(package_path, signature, keys)
        except OSError as exc:
            raise PackageError(f"cannot read signature {signature_path}: {exc.strerror}") from None
        except SignatureError as exc:
            raise PackageError(f"signature does not verify: {exc}") from None

    return check


__all__ = ["package_signature_check"]
