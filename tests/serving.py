"""Real servers on 127.0.0.1 for tests: `fleetgap serve` as a subprocess, ASGI apps in a thread."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import uvicorn


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Server:
    url: str
    process: subprocess.Popen[bytes]
    log: Path

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")


@contextlib.contextmanager
def fleetgap_serve(
    *args: str,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    log_dir: Path,
    scheme: str = "http",
    ready_timeout: float = 60.0,
) -> Iterator[Server]:
    """Run `fleetgap serve -address 127.0.0.1:<free port> ARGS...` until /health answers."""
    port = free_port()
    log = log_dir / f"serve-{port}.log"
    command = [sys.executable, "-m", "fleetgap", "serve", "-address", f"127.0.0.1:{port}", *args]
    # Tests read request lines right after their requests: written at the end of each loop
    # turn here; the buffering itself is tested with the flag (tests/test_request_log_flush.py)
    quick_lines = {"FLEETGAP_LOG_FLUSH_INTERVAL": "0"}
    full_env = {**quick_lines, **os.environ, "RUST_BACKTRACE": "0", **(env or {})}
    with open(log, "wb") as out:
        process = subprocess.Popen(command, env=full_env, cwd=cwd, stdout=out, stderr=out)
    server = Server(f"{scheme}://127.0.0.1:{port}", process, log)
    try:
        _wait_ready(server, ready_timeout)
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _wait_ready(server: Server, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"fleetgap serve exited early:\n{server.log_text()}")
        try:
            response = httpx.get(server.url + "/health", verify=False, timeout=2)
            if response.status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"fleetgap serve not ready after {timeout}s:\n{server.log_text()}")


@contextlib.contextmanager
def serve_asgi(app, **config) -> Iterator[str]:  # type: ignore[no-untyped-def]
    """Run an ASGI app with uvicorn in a thread on 127.0.0.1; yields its base URL."""
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", **config)
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.02)
    scheme = "https" if config.get("ssl_certfile") else "http"
    try:
        yield f"{scheme}://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
