"""Detached-signature checks for the mirror, big files in worker processes.

pysequoia holds the GIL for the whole of a verification (it hashes the file inside one
Rust call), which would stall every other download of the run while a 500 MB agent
archive is checked. Files from `PROCESS_THRESHOLD` bytes up are therefore verified in a
small process pool; smaller ones in the calling thread. Either way the check is
`fleetgap.pgp.signatures.verify_file` with the same keys.
"""

from __future__ import annotations

import multiprocessing
import threading
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from fleetgap.errors import FleetgapError
from fleetgap.pgp.keys import PublicKey, parse_public_key
from fleetgap.pgp.signatures import SignatureError, verify_file

PROCESS_THRESHOLD = 16 << 20


class Verifier:
    def __init__(self, keys: Sequence[PublicKey], workers: int) -> None:
        self.keys = list(keys)
        self._armored = tuple(key.armored for key in self.keys)
        self._workers = max(1, workers)
        self._pool: ProcessPoolExecutor | None = None
        self._lock = threading.Lock()

    def __enter__(self) -> Verifier:
        return self

    def __exit__(self, *exc: object) -> None:
        with self._lock:
            if self._pool is not None:
                self._pool.shutdown(wait=exc[0] is None, cancel_futures=True)

    def verify(self, path: Path, signature: bytes) -> None:
        """Raise SignatureError unless one of the keys verifies `signature` over the file."""
        if path.stat().st_size < PROCESS_THRESHOLD:
            verify_file(path, signature, self.keys)
            return
        try:
            future = self._pool_for().submit(_verify, str(path), signature, self._armored)
            problem = future.result()
        except (OSError, RuntimeError) as exc:  # e.g. BrokenProcessPool: a worker died
            raise FleetgapError(f"signature check could not run: {exc}") from None
        if problem is not None:
            raise SignatureError(problem)

    def _pool_for(self) -> ProcessPoolExecutor:
        with self._lock:
            if self._pool is None:
                # spawn, not fork: the parent has download threads holding locks
                context = multiprocessing.get_context("spawn")
                self._pool = ProcessPoolExecutor(self._workers, mp_context=context)
            return self._pool


def _verify(path: str, signature: bytes, armored_keys: tuple[str, ...]) -> str | None:
    """Runs in a worker process: None when verified, else the reason."""
    keys = [parse_public_key(armored) for armored in armored_keys]
    try:
        verify_file(Path(path), signature, keys)
    except SignatureError as exc:
        return str(exc)
    return None
