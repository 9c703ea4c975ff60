"""`write_bundle` and `bundle load` of a bundle of SIZE bytes of signed artifacts, next to
`tar cf` + `sha256sum` over the same files in the same run; throughput ratio and the peak RSS
of each child (resource.getrusage(RUSAGE_CHILDREN), so each step runs in its own process).

    python bench/bundle.py [--size-mb 2048] [--dir /tmp/fleetgap-bundle-bench]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
SRC = HERE.parent / "src"

CHILD_WRITE = """
import sys, hashlib, pysequoia
from pathlib import Path
from fleetgap.bundle.manifest import FileEntry
from fleetgap.bundle.writer import write_bundle
from fleetgap.pgp.keys import SecretKey
from fleetgap.store import DataDir
cache, out, key = DataDir(Path(sys.argv[1])), Path(sys.argv[2]), SecretKey.read(Path(sys.argv[3]))
entries = []
for path in sorted(p for p in (cache.root / "downloads").rglob("*") if p.is_file()):
    rel = path.relative_to(cache.root).as_posix()
    with open(path, "rb") as h:
        digest = hashlib.file_digest(h, "sha256").hexdigest()
    how = "sidecar" if rel.endswith((".asc", ".sha512")) else "sha512+openpgp-detached"
    entries.append(FileEntry(rel, path.stat().st_size, digest, how, None))
for path in sorted((cache.root / "keys").iterdir()):
    with open(path, "rb") as h:
        digest = hashlib.file_digest(h, "sha256").hexdigest()
    entries.append(FileEntry("keys/" + path.name, path.stat().st_size, digest, "none", None))
import time
started = time.monotonic()
write_bundle(cache, entries, out, selection={}, sign_key=key)
print(time.monotonic() - started)
"""


def child(argv: list[str]) -> tuple[float, int]:
    """Run one step in a child; its seconds and its peak RSS (max over children so far)."""
    started = time.monotonic()
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    done = subprocess.run(argv, check=True, env=env, stdout=subprocess.PIPE, text=True)
    seconds = time.monotonic() - started
    if argv[1] == "-c":  # the write child times write_bundle alone (not the entries' hashing)
        seconds = float(done.stdout.strip().splitlines()[-1])
    return seconds, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size-mb", type=int, default=2048)
    parser.add_argument("--dir", type=Path, default=Path("/tmp/fleetgap-bundle-bench"))
    args = parser.parse_args()
    sys.path.insert(0, str(SRC))
    import pysequoia

    from fleetgap.pgp.keys import SecretKey
    from fleetgap.pgp.sha512 import sidecar_line
    from fleetgap.pgp.signatures import sign_file
    from fleetgap.store import DataDir

    root = args.dir
    shutil.rmtree(root, ignore_errors=True)
    cache = DataDir(root / "cache").ensure()
    key = SecretKey(pysequoia.Tsk.generate("bench", cipher_suite=pysequoia.CipherSuite.RSA2k))
    (root / "key.asc").write_text(key.armored)
    (root / "pub.asc").write_text(key.public_key.armored)
    (cache.keys / "GPG-KEY-elastic-agent").write_text(key.public_key.armored)
    per_file = 256 << 20
    count = max(1, (args.size_mb << 20) // per_file)
    block = hashlib.sha512(b"bench").digest() * (1 << 14)  # 1 MiB
    folder = cache.downloads / "beats" / "elastic-agent"
    folder.mkdir(parents=True)
    for index in range(count):
        path = folder / f"elastic-agent-9.{index}.0-linux-x86_64.tar.gz"
        with open(path, "wb") as handle:
            for n in range(per_file >> 20):
                handle.write(block[: len(block) - 1] + bytes([n % 256]))
        path.with_name(path.name + ".sha512").write_text(sidecar_line(path))
        sign_file(path, key)
    total = sum(p.stat().st_size for p in cache.root.rglob("*") if p.is_file())
    subprocess.run(["sync"], check=False)
    out = root / "b.bundle"
    python = sys.executable
    write_s, write_rss = child(
        [python, "-c", CHILD_WRITE, str(cache.root), str(out), str(root / "key.asc")]
    )
    tar_started = time.monotonic()
    subprocess.run(
        ["tar", "cf", str(root / "plain.tar"), "-C", str(cache.root), "downloads", "keys"],
        check=True,
    )
    tar_s = time.monotonic() - tar_started
    sum_started = time.monotonic()
    subprocess.run(["sha256sum", str(root / "plain.tar")], check=True, stdout=subprocess.DEVNULL)
    sum_s = time.monotonic() - sum_started
    load_s, load_rss = child(
        [
            python,
            "-m",
            "fleetgap",
            "bundle",
            "load",
            str(out),
            "--data",
            str(root / "data"),
            "--trust-key",
            str(root / "pub.asc"),
            "--key",
            str(root / "pub.asc"),
        ]
    )
    floor = tar_s + sum_s
    mb = total / 1e6
    print(f"bundle: {count} files, {mb:.0f} MB")
    print(
        f"tar cf + sha256sum: {floor:.1f} s ({mb / floor:.0f} MB/s; tar cf {tar_s:.1f} s, "
        f"sha256sum {sum_s:.1f} s)"
    )
    print(
        f"write_bundle:       {write_s:.1f} s ({mb / write_s:.0f} MB/s), "
        f"{floor / write_s:.0%} of tar+sha256sum"
    )
    print(
        f"bundle load:        {load_s:.1f} s ({mb / load_s:.0f} MB/s), "
        f"{floor / load_s:.0%} of tar+sha256sum"
    )
    print(
        f"peak RSS of the children: write {write_rss / 1e6:.0f} MB, "
        f"load (max so far) {load_rss / 1e6:.0f} MB"
    )
    shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
