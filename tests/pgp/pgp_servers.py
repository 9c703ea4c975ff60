"""Real servers for the trust tests: uvicorn in a thread on 127.0.0.1, HTTPS via trustme."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from serving import serve_asgi


@dataclass(frozen=True)
class TLS:
    ca_pem: Path
    server_pem: Path


@dataclass(frozen=True)
class Running:
    base: str  # e.g. https://127.0.0.1:4321
    port: int


@contextlib.contextmanager
def run_app(app, tls: TLS | None) -> Iterator[Running]:
    """Serve an ASGI app with uvicorn in a thread on 127.0.0.1 (HTTPS when `tls` is given)."""
    options = {"ssl_certfile": str(tls.server_pem)} if tls else {}
    with serve_asgi(app, lifespan="off", **options) as base:
        yield Running(base, int(base.rsplit(":", 1)[1]))
