"""Verify a large file's detached signature and report time and peak memory.

    python bench/pgp_verify.py [--size-gb 2] [--dir /tmp]

Writes a random file of the given size, signs it with a fresh RSA key (pysequoia), then
verifies it in a child process (so the child's peak RSS belongs to verification alone):
the signature alone, the `.sha512` alone, and both in the one read fleetgap makes
(`check_artifact`, what `verify artifact`, the audit and — while downloading — the mirror do).
The file is deleted at the end. Target: peak RSS < 100 MB for a 2 GB file.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CHILD = r"""
import resource, sys, time
from pathlib import Path
from fleetgap.pgp.artifact_check import check_artifact
from fleetgap.pgp.keys import read_public_key
from fleetgap.pgp.sha512 import file_sha512
from fleetgap.pgp.signatures import verify_file
data, sig, pub, mode = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3]), sys.argv[4]
key = read_public_key(pub)
start = time.perf_counter()
if mode == "sha512":
    file_sha512(data)
elif mode == "both":
    check_artifact(data, [("bench", key)])
else:
    verify_file(data, sig.read_bytes(), [key])
elapsed = time.perf_counter() - start
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(f"{elapsed:.2f} {peak:.1f}")
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-gb", type=float, default=2.0)
    parser.add_argument("--dir", default=tempfile.gettempdir())
    args = parser.parse_args()

    import pysequoia

    from fleetgap.pgp.keys import SecretKey
    from fleetgap.pgp.sha512 import sidecar_line
    from fleetgap.pgp.signatures import sign_file

    folder = Path(tempfile.mkdtemp(prefix="fleetgap-bench-", dir=args.dir))
    data = folder / "big.tar.gz"
    size = int(args.size_gb * (1 << 30))
    try:
        block = os.urandom(1 << 20)
        with open(data, "wb") as handle:
            for offset in range(0, size, len(block)):
                handle.write(block[: min(len(block), size - offset)])
        key = SecretKey(
            pysequoia.Tsk.generate(
                "bench <b@example.org>", cipher_suite=pysequoia.CipherSuite.RSA2k
            )
        )
        public = folder / "key.pub"
        public.write_text(key.public_key.armored)
        start = time.perf_counter()
        signature = sign_file(data, key)
        sign_s = time.perf_counter() - start
        print(f"file: {size / (1 << 30):.2f} GiB; sign (pysequoia): {sign_s:.2f} s")
        data.with_name(data.name + ".sha512").write_text(sidecar_line(data))
        for mode, label in (
            ("signature", "signature (.asc) alone"),
            ("sha512", ".sha512 digest alone"),
            ("both", ".sha512 and .asc, one read"),
        ):
            out = subprocess.run(
                [sys.executable, "-c", CHILD, str(data), str(signature), str(public), mode],
                check=True,
                capture_output=True,
                text=True,
            ).stdout.split()
            print(f"{label:34s} {float(out[0]):7.2f} s   peak RSS {float(out[1]):7.1f} MB")
        own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"(this parent process, which wrote and signed the file: peak RSS {own:.1f} MB)")
    finally:
        for path in folder.iterdir():
            path.unlink()
        folder.rmdir()


if __name__ == "__main__":
    main()
