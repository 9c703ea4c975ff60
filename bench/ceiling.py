"""The ceiling: what Granian itself reaches, with no application code, next to nginx.

    python bench/ceiling.py /tmp/fleetgap-bench [--duration 5]

Serves the same bodies three ways on this machine: nginx (static files, the floor of
bench/registry.py), Granian ASGI with a minimal app (bytes from memory, and files via
`http.response.pathsend`), and Granian RSGI (bytes from memory), each with 2 workers.
The ratio of these to nginx bounds what any ASGI app on Granian can show in
bench/registry.py: a fleetgap figure near the ASGI ratio has no overhead left to remove.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from registry import Loader, Nginx, free_port, http_get, stop_group  # noqa: E402

BODIES_ENV = "FLEETGAP_CEILING_DIR"  # directory with the bodies, for the apps below


def _bodies() -> dict[str, tuple[str, bytes]]:
    base = Path(os.environ.get(BODIES_ENV, "."))
    return {f"/{p.name}": (str(p), p.read_bytes()) for p in base.glob("*") if p.is_file()}


async def asgi_memory(scope, receive, send):  # type: ignore[no-untyped-def]
    """Minimal ASGI: a precomputed body from memory."""
    if scope["type"] != "http":
        return
    _, body = BODIES[scope["path"]]
    headers = [(b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def asgi_pathsend(scope, receive, send):  # type: ignore[no-untyped-def]
    """Minimal ASGI: stat the file, then let Granian send it (`http.response.pathsend`)."""
    if scope["type"] != "http":
        return
    path, _ = BODIES[scope["path"]]
    headers = [(b"content-length", str(os.stat(path).st_size).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.pathsend", "path": path})


class _Rsgi:
    async def __rsgi__(self, scope, proto):  # type: ignore[no-untyped-def]
        _, body = BODIES[scope.path]
        proto.response_bytes(200, [], body)


rsgi_memory = _Rsgi()
BODIES = _bodies() if os.environ.get(BODIES_ENV) else {}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", type=Path)
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args(argv)
    zips = sorted((args.data / "packages").glob("*.zip"), key=lambda p: (p.stat().st_size, p.name))
    if not zips:
        sys.exit(f"error: no zips in {args.data}/packages; run bench/gen.py first")
    granian = shutil.which("granian") or sys.exit("error: granian not found")
    with tempfile.TemporaryDirectory(prefix="fleetgap-ceiling-") as tmp:
        work = Path(tmp)
        static = work / "www" / "static"
        static.mkdir(parents=True)
        (static / "small.json").write_bytes(_json_body(3000))
        (static / "search.json").write_bytes(_json_body(540_000))
        shutil.copy(zips[len(zips) // 2], static / "median.zip")
        shutil.copy(zips[-1], static / "largest.zip")
        env = dict(os.environ, **{BODIES_ENV: str(static)})
        servers = {
            "asgi memory": ("asgi", "ceiling:asgi_memory"),
            "asgi pathsend": ("asgi", "ceiling:asgi_pathsend"),
            "rsgi memory": ("rsgi", "ceiling:rsgi_memory"),
        }
        procs, bases = [], {}
        nginx = Nginx(
            shutil.which("nginx") or "nginx", work, work / "www", args.data, access_log=False
        )
        nginx.start()
        try:
            for label, (interface, target) in servers.items():
                port = free_port()
                cmd = [granian, "--interface", interface, "--workers", str(args.workers)]
                cmd += ["--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"]
                cmd += ["--working-dir", str(Path(__file__).parent), target]
                procs.append(subprocess.Popen(cmd, env=env, start_new_session=True))
                bases[label] = f"http://127.0.0.1:{port}"
            for base in bases.values():
                _wait(base + "/small.json")
            load = Loader(shutil.which("wrk"), 32, 1, args.duration, 1.0, work)
            print(
                "| body | nginx req/s | " + " | ".join(f"{k} req/s (ratio)" for k in bases) + " |"
            )
            print("|---|---:|" + "---:|" * len(bases))
            for name in ("small.json", "search.json", "median.zip", "largest.zip"):
                size = (static / name).stat().st_size
                floor = load.run(f"{nginx.base}/static/{name}", nginx.pid)
                cells = []
                for base in bases.values():
                    r = load.run(f"{base}/{name}", os.getpid())
                    cells.append(f"{r.rps:,.0f} ({r.rps / floor.rps:.2f})")
                print(
                    f"| {name} ({size / 1000:.0f} KB) | {floor.rps:,.0f} | "
                    + " | ".join(cells)
                    + " |"
                )
        finally:
            nginx.stop()
            for proc in procs:
                stop_group(proc, signal.SIGTERM, 20)
    return 0


def _json_body(size: int) -> bytes:
    item = b'  {\n    "name": "example",\n    "version": "1.2.3",\n    "title": "Example"\n  },\n'
    return b"[\n" + item * (size // len(item)) + b"  {}\n]\n"


def _wait(url: str) -> None:
    deadline = time.monotonic() + 30
    while http_get(url)[0] != 200:
        if time.monotonic() > deadline:
            sys.exit(f"error: {url} did not answer")
        time.sleep(0.1)


if __name__ == "__main__":
    sys.exit(main())
