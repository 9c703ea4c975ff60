"""Mirror throughput with verification on, against curl, from the same loopback server.

    python bench/mirror.py [--size-mb 1024] [--files 4] [--parallel 1 4] [--server uvicorn]

Publishes N signed agent archives (1 GB in total by default, RSA key made here) in a
temporary directory, serves them with fleetgap's downloads app (uvicorn or granian in a
separate process), then times in one run:
  * curl fetching the same files (one process, one connection, no verification);
  * curl + sha512sum + gpgv, the verified workflow by hand;
  * curl | tee | sha512sum, one file at a time and all at once: the least work any
    verifying mirror must do (every byte through SHA-512), with standard tools;
  * one SHA-512 pass over the cached files on one core: the ceiling for one file;
  * `fleetgap artifacts mirror` (download + SHA-512 + PGP + atomic placement) per --parallel.
Prints MB/s for each and the ratio to curl. Speed never fails anything; it is printed.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

PLATFORMS = ("linux-x86_64", "linux-arm64", "darwin-x86_64", "darwin-aarch64")
VERSION = "9.1.0"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=1024, help="total size of all files")
    parser.add_argument("--files", type=int, default=4, choices=range(1, 5))
    parser.add_argument("--parallel", type=int, nargs="+", default=[1, 4])
    parser.add_argument(
        "--server",
        choices=("uvicorn", "granian", "nginx"),
        default="uvicorn",
        help="what plays the public host: fleetgap's downloads app, or nginx (sendfile)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = parser.parse_args()
    if not shutil.which("curl"):
        sys.exit("curl is needed for the comparison")

    work = Path(tempfile.mkdtemp(prefix="fleetgap-bench-"))
    try:
        run(work, args)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


def run(work: Path, args: argparse.Namespace) -> None:
    from fleetgap.pgp.keys import SecretKey
    from fleetgap.pgp.signatures import sign_file

    print(f"preparing {args.files} file(s), {args.size_mb} MB in total, in {work}", flush=True)
    key = SecretKey.generate("fleetgap bench <bench@test.invalid>")
    key_file = work / "bench-key.asc"
    key_file.write_text(key.public_key.armored)
    upstream = work / "site" / "downloads"
    names = []
    each = args.size_mb * (1 << 20) // args.files
    for platform in PLATFORMS[: args.files]:
        name = f"elastic-agent-{VERSION}-{platform}.tar.gz"
        path = upstream / "beats/elastic-agent" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        write_pseudo_random(path, each)
        digest = hashlib.sha512()
        with open(path, "rb") as handle:
            while chunk := handle.read(1 << 24):
                digest.update(chunk)
        path.with_name(name + ".sha512").write_text(f"{digest.hexdigest()}  {name}\n")
        sign_file(path, key)
        names.append(name)
    total = each * len(names)

    port = free_port()
    server = start_server(args.server, upstream, port, work)
    try:
        base = f"http://127.0.0.1:{server.port}/downloads/"
        curl_seconds = time_curl(base, names, work / "curl")
        curl_rate = total / 1e6 / curl_seconds
        print(f"curl            {curl_rate:8.1f} MB/s  ({curl_seconds:.2f} s, no verification)")
        if shutil.which("gpgv") and shutil.which("gpg") and shutil.which("sha512sum"):
            manual = time_manual(base, names, key_file, work / "manual")
            print(
                f"curl+sha512sum+gpgv {total / 1e6 / manual:4.1f} MB/s  ({manual:.2f} s, "
                "the verified workflow by hand)",
                flush=True,
            )
        for together in (False, True):
            seconds = time_curl_sha512(base, names, work / "tee", together)
            print(
                f"curl|tee|sha512sum {total / 1e6 / seconds:6.1f} MB/s  ({seconds:.2f} s, "
                f"{'all files at once' if together else 'one file at a time'}, no signature)",
                flush=True,
            )
        hash_seconds = time_sha512(upstream, names)
        hash_rate = total / 1e6 / hash_seconds
        print(f"one SHA-512 pass {hash_rate:7.1f} MB/s  (one core, files cached) = "
              f"{100 * hash_rate / curl_rate:.0f}% of curl: the most one file can reach",
              flush=True)  # fmt: skip
        for parallel in args.parallel:
            seconds = time_mirror(base, key_file, work / f"data-{parallel}", parallel, args.files)
            rate = total / 1e6 / seconds
            print(
                f"fleetgap -p {parallel:<3} {rate:8.1f} MB/s  ({seconds:.2f} s, sha512 + PGP + "
                f"placement)  = {100 * rate / curl_rate:5.1f}% of curl",
                flush=True,
            )
    finally:
        server.stop()


def write_pseudo_random(path: Path, size: int) -> None:
    block = os.urandom(1 << 24)
    with open(path, "wb") as handle:
        written = 0
        counter = 0
        while written < size:
            # vary every block so the file is not trivially repetitive
            chunk = counter.to_bytes(8, "big") + block[8 : min(len(block), size - written)]
            handle.write(chunk[: size - written])
            written += len(chunk[: size - written])
            counter += 1


@dataclass
class Server:
    port: int
    stop: Callable[[], None]


def start_server(kind: str, upstream: Path, port: int, work: Path) -> Server:
    if kind == "nginx":
        sys.path.insert(0, str(Path(__file__).parent))
        from registry import Nginx

        nginx = Nginx(
            shutil.which("nginx") or "nginx", work, upstream.parent, upstream.parent,
            access_log=False,
        )  # fmt: skip
        nginx.start()
        return Server(nginx.port, nginx.stop)
    app_module = work_app_module(upstream)
    env = {**os.environ, "PYTHONPATH": str(app_module.parent)}
    if kind == "uvicorn":
        command = [sys.executable, "-m", "uvicorn", "bench_app:app", "--host", "127.0.0.1",
                   "--port", str(port), "--log-level", "warning", "--no-access-log"]  # fmt: skip
    else:
        command = [sys.executable, "-m", "granian", "--interface", "asgi", "--host", "127.0.0.1",
                   "--port", str(port), "--log-level", "warning", "bench_app:app"]  # fmt: skip
    process = subprocess.Popen(command, env=env)

    def stop() -> None:
        process.terminate()
        process.wait(10)

    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return Server(port, stop)
        except OSError:
            time.sleep(0.1)
    process.kill()
    raise SystemExit(f"{kind} did not start")


def work_app_module(upstream: Path) -> Path:
    module = upstream.parent.parent / "app" / "bench_app.py"
    module.parent.mkdir(exist_ok=True)
    module.write_text(
        "from pathlib import Path\n"
        "from starlette.applications import Starlette\n"
        "from starlette.routing import Mount\n"
        "from fleetgap.artifacts.serving import downloads_app\n"
        f"root = Path({str(upstream)!r})\n"
        "app = Starlette(routes=[Mount('/downloads', app=downloads_app(root))])\n"
    )
    return module


def time_curl(base: str, names: list[str], target: Path) -> float:
    target.mkdir()
    command = ["curl", "-sS", "--fail"]
    for name in names:
        command += ["-o", str(target / name), f"{base}beats/elastic-agent/{name}"]
    started = time.perf_counter()
    subprocess.run(command, check=True)
    seconds = time.perf_counter() - started
    shutil.rmtree(target)
    return seconds


def time_curl_sha512(base: str, names: list[str], target: Path, together: bool) -> float:
    target.mkdir()
    commands = [
        f"curl -sS --fail {base}beats/elastic-agent/{name} | tee {target / name} "
        "| sha512sum > /dev/null"
        for name in names
    ]
    started = time.perf_counter()
    if together:
        for process in [subprocess.Popen(c, shell=True) for c in commands]:
            process.wait()
    else:
        for command in commands:
            subprocess.run(command, shell=True, check=True)
    seconds = time.perf_counter() - started
    shutil.rmtree(target)
    return seconds


def time_sha512(upstream: Path, names: list[str]) -> float:
    started = time.perf_counter()
    for name in names:
        with open(upstream / "beats/elastic-agent" / name, "rb") as handle:
            hashlib.file_digest(handle, "sha512")
    return time.perf_counter() - started


def time_manual(base: str, names: list[str], key_file: Path, target: Path) -> float:
    """What operators do today: curl each file and sidecar, then sha512sum -c and gpgv."""
    target.mkdir()
    keyring = target.parent / "bench-keyring.gpg"
    subprocess.run(["gpg", "--batch", "--yes", "--dearmor", "-o", str(keyring), str(key_file)],
                   check=True)  # fmt: skip
    command = ["curl", "-sS", "--fail"]
    for name in names:
        for suffix in ("", ".sha512", ".asc"):
            command += ["-o", str(target / (name + suffix)),
                        f"{base}beats/elastic-agent/{name}{suffix}"]  # fmt: skip
    started = time.perf_counter()
    subprocess.run(command, check=True)
    for name in names:
        subprocess.run(["sha512sum", "--quiet", "-c", name + ".sha512"], cwd=target, check=True)
        subprocess.run(["gpgv", "--quiet", "--keyring", str(keyring), name + ".asc", name],
                       cwd=target, check=True, stderr=subprocess.DEVNULL)  # fmt: skip
    seconds = time.perf_counter() - started
    shutil.rmtree(target)
    return seconds


def time_mirror(base: str, key_file: Path, data: Path, parallel: int, files: int) -> float:
    command = [sys.executable, "-m", "fleetgap", "artifacts", "mirror", "--source", base,
               "--data", str(data), "--key", str(key_file), "--version", VERSION,
               "--product", "elastic-agent", "--package-type", "tar.gz",
               "--parallel", str(parallel)]  # fmt: skip
    command += [f"--platform={p}" for p in PLATFORMS[:files]]
    started = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if result.returncode != 0:
        raise SystemExit(f"mirror failed:\n{result.stdout}{result.stderr}")
    shutil.rmtree(data)
    return seconds


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


if __name__ == "__main__":
    main()
