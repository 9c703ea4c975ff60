"""Real servers for the trust tests: uvicorn in a thread on 127.0.0.1, HTTPS via trustme."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import uvicorn


@dataclass(frozen=True)
class TLS:
    ca_pem: Path
    server_pem: Path


@dataclass(frozen=True)
class Running:
    base: str  # e.g. https://127.0.0.1:4321
    port: int


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def run_app(app, tls: TLS | None) -> Iterator[Running]:
    """Serve an ASGI app with uvicorn in a thread on 127.0.0.1 (HTTPS when `tls` is given)."""
    port = free_port()
    options = {"ssl_certfile": str(tls.server_pem)} if tls else {}
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, log_level="warning", lifespan="off", **options
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("test server did not start")
        time.sleep(0.01)
    try:
        yield Running(f"{'https' if tls else 'http'}://127.0.0.1:{port}", port)
    finally:
        server.should_exit = True
        thread.join(10)
