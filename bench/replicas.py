"""Two `fleetgap serve` replicas on one data directory: how long after a `bundle load` ends
does each replica serve it? (README "Replicas": within 2 s.)

    python bench/replicas.py [--base 150] [--rounds 5] [--per-round 5] [--workers 1]

Generates packages with gen.py (no artifacts needed), puts all but the last rounds × per-round
zips in DATA, writes one signed bundle per round with the rest, starts two replicas on DATA,
then for each round runs `fleetgap bundle load` and polls both replicas' /search every 20 ms
until they list the round's packages. Prints each delay from the end of the load.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

HERE = Path(__file__).resolve().parent
SRC = HERE.parent / "src"
sys.path[:0] = [str(SRC), str(HERE)]

import gen  # noqa: E402
import pysequoia  # noqa: E402

from fleetgap.bundle.manifest import FileEntry  # noqa: E402
from fleetgap.bundle.writer import write_bundle  # noqa: E402
from fleetgap.pgp.keys import SecretKey  # noqa: E402
from fleetgap.pgp.package_signatures import sign_package  # noqa: E402
from fleetgap.store import DataDir  # noqa: E402

ENV = {**os.environ, "PYTHONPATH": str(SRC)}
EVERY_VERSION = {"all": "true", "prerelease": "true"}
WAIT_SECONDS = 60.0  # a replica that has not served a load by then is reported as missing


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", type=int, default=150, help="package versions already in DATA")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--per-round", type=int, default=5, help="package versions per bundle")
    parser.add_argument("--workers", type=int, default=1, help="Granian workers per replica")
    parser.add_argument("--dir", type=Path, default=None, help="work directory (kept)")
    args = parser.parse_args()
    work = args.dir or Path(tempfile.mkdtemp(prefix="fleetgap-replicas-"))
    total = args.base + args.rounds * args.per_round
    registry = work / "gen"
    options = gen.GenOptions(
        seed=1, packages=max(1, total // 5), versions=5, agent_versions=(), artifact_mb=0.0
    )
    gen.generate(registry, options, jobs=os.cpu_count() or 1, sign=False)
    zips = sorted((registry / "packages").glob("*.zip"))[:total]
    files_key, signer = _key("files <f@example.org>"), _key("signer <s@example.org>")
    (work / "signer.asc").write_text(signer.public_key.armored)

    data = DataDir(work / "DATA")
    shutil.rmtree(data.root, ignore_errors=True)
    data.ensure()
    for path in zips[: args.base]:
        shutil.copy2(path, data.packages / path.name)
    bundles = []
    for number in range(args.rounds):
        chosen = zips[args.base + number * args.per_round :][: args.per_round]
        bundles.append((_bundle(work, number, chosen, files_key, signer), chosen))

    flags = ["--data", str(data.root), "-require-package-signatures=false"]
    flags += ["--workers", str(args.workers)]
    replicas = [_serve(flags, work / f"replica-{n}.log") for n in (1, 2)]
    delays: list[list[float]] = [[], []]
    try:
        print(
            f"{len(zips[: args.base])} package versions in DATA; two replicas, {args.workers} "
            f"worker(s) each; {args.per_round} package versions per load"
        )
        print("round  load s   replica 1 s  replica 2 s   (after the load ended)")
        for number, (bundle, chosen) in enumerate(bundles, 1):
            wanted = {p.name.removesuffix(".zip") for p in chosen}
            started = time.monotonic()
            subprocess.run(
                [sys.executable, "-m", "fleetgap", "bundle", "load", str(bundle), "--data",
                 str(data.root), "--trust-key", str(work / "signer.asc")],
                env=ENV, check=True, stdout=subprocess.DEVNULL,
            )  # fmt: skip
            ended = time.monotonic()
            seen = _wait_all(replicas, wanted, ended)
            for index, delay in enumerate(seen):
                delays[index].append(delay)
            print(f"{number:5d}  {ended - started:6.2f}   "
                  + "   ".join(f"{d:10.2f}" for d in seen))  # fmt: skip
    finally:
        for process, _url in replicas:
            process.terminate()
            process.wait(15)
    every = delays[0] + delays[1]
    print(f"delay after the load ended: min {min(every):.2f} s, median "
          f"{statistics.median(every):.2f} s, max {max(every):.2f} s "
          f"(target: 2 s; poll every 0.5 s + rescan)")  # fmt: skip
    print(f"work directory: {work}")
    return 0


def _key(uid: str) -> SecretKey:
    return SecretKey(pysequoia.Tsk.generate(uid, cipher_suite=pysequoia.CipherSuite.RSA2k))


def _bundle(work: Path, number: int, chosen: list[Path], files_key, signer) -> Path:  # type: ignore[no-untyped-def]
    cache = DataDir(work / f"cache-{number}")
    shutil.rmtree(cache.root, ignore_errors=True)
    cache.ensure()
    for path in chosen:
        shutil.copy2(path, cache.packages / path.name)
        sign_package(cache.packages / path.name, files_key)
    (cache.keys / "GPG-KEY-elastic-agent").write_text(files_key.public_key.armored)
    entries = []
    for path in sorted(p for p in cache.root.rglob("*") if p.is_file()):
        relative = path.relative_to(cache.root).as_posix()
        if relative.startswith("state/"):
            continue
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        if relative.startswith("keys/"):
            how, fingerprint = "pinned-fingerprint", files_key.fingerprint
        elif relative.endswith(".sig"):
            how, fingerprint = "sidecar", None
        else:
            how, fingerprint = "openpgp-detached", files_key.fingerprint
        entries.append(FileEntry(relative, path.stat().st_size, digest, how, fingerprint))
    out = work / f"round-{number}.bundle"
    out.unlink(missing_ok=True)
    write_bundle(cache, entries, out, selection={}, sequence=number + 1, sign_key=signer)
    return out


def _serve(flags: list[str], log: Path) -> tuple[subprocess.Popen[bytes], str]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = [sys.executable, "-m", "fleetgap", "serve", "-address", f"127.0.0.1:{port}", *flags]
    with open(log, "wb") as out:
        process = subprocess.Popen(command, env=ENV, stdout=out, stderr=out)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                return process, url
        except httpx.HTTPError:
            time.sleep(0.1)
    raise SystemExit(f"replica not ready, see {log}")


def _wait_all(replicas, wanted: set[str], since: float) -> list[float]:  # type: ignore[no-untyped-def]
    found: dict[int, float] = {}
    with httpx.Client(timeout=10) as client:
        while len(found) < len(replicas) and time.monotonic() - since < WAIT_SECONDS:
            for index, (_process, url) in enumerate(replicas):
                if index in found:
                    continue
                listed = client.get(f"{url}/search", params=EVERY_VERSION).json()
                if wanted <= {f"{p['name']}-{p['version']}" for p in listed}:
                    found[index] = time.monotonic() - since
            time.sleep(0.02)
    return [found.get(i, float("inf")) for i in range(len(replicas))]


if __name__ == "__main__":
    sys.exit(main())
