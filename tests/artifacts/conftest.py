"""Fixtures: real uvicorn servers on 127.0.0.1, a fake public artifact host, test keys."""

from __future__ import annotations

import hashlib
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import anyio
import pysequoia
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.routing import Mount

from fleetgap.artifacts.serving import downloads_app
from fleetgap.pgp.keys import SecretKey
from fleetgap.pgp.signatures import sign_bytes


class ServerThread:
    """Run an ASGI app with uvicorn on 127.0.0.1 (optionally TLS) in a background thread."""

    def __init__(self, app, ssl_context_files: tuple[str, str] | None = None) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        certfile, keyfile = ssl_context_files or (None, None)
        config = uvicorn.Config(
            app,
            log_level="warning",
            lifespan="off",
            ssl_certfile=certfile,
            ssl_keyfile=keyfile,
            timeout_graceful_shutdown=1,
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True
        )
        self.scheme = "https" if ssl_context_files else "http"

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}"

    def __enter__(self) -> ServerThread:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.01)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(5)


@dataclass
class Gate:
    """Hold a response after `after` bytes of `path` until `release` is set."""

    path: str
    after: int
    reached: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)


@dataclass
class Hit:
    method: str
    path: str
    range: str | None
    status: int = 0
    sent: int = 0


class Recorder:
    """ASGI middleware logging every request: path, Range header, status, body bytes sent."""

    def __init__(self, app) -> None:
        self.app = app
        self.hits: list[Hit] = []
        self.gates: list[Gate] = []
        self.lock = threading.Lock()

    def clear(self) -> None:
        with self.lock:
            self.hits.clear()

    def for_path(self, suffix: str) -> list[Hit]:
        with self.lock:
            return [h for h in self.hits if h.path.endswith(suffix)]

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = dict(scope["headers"])
        hit = Hit(scope["method"], scope["path"], (headers.get(b"range") or b"").decode() or None)
        with self.lock:
            self.hits.append(hit)
        gate = next((g for g in self.gates if scope["path"].endswith(g.path)), None)

        async def recording_send(message):
            if message["type"] == "http.response.start":
                hit.status = message["status"]
            elif message["type"] == "http.response.body":
                body = message.get("body", b"")
                if gate and not gate.release.is_set() and hit.sent + len(body) > gate.after:
                    gate.reached.set()
                    await anyio.to_thread.run_sync(gate.release.wait)
                    raise anyio.get_cancelled_exc_class()()
                hit.sent += len(body)
            await send(message)

        await self.app(scope, receive, recording_send)


@dataclass
class Upstream:
    """A fake artifacts.elastic.co: files under `root`, served at `<url>/downloads/`."""

    root: Path
    recorder: Recorder
    server: ServerThread

    @property
    def source(self) -> str:
        return f"{self.server.url}/downloads/"

    def publish(
        self,
        relative: str,
        content: bytes,
        key: SecretKey,
        *,
        sha512: bytes | None = None,
        signature: bytes | None = None,
        with_asc: bool = True,
    ) -> Path:
        """Write a binary with its `.sha512` (sha512sum format) and `.asc` as Elastic does."""
        path = self.root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
        if sha512 is None:
            sha512 = f"{hashlib.sha512(content).hexdigest()}  {path.name}\n".encode()
        path.with_name(path.name + ".sha512").write_bytes(sha512)
        if with_asc:
            asc = signature if signature is not None else sign_bytes(content, key)
            path.with_name(path.name + ".asc").write_bytes(asc)
        return path


def serve_downloads(root: Path, **kwargs) -> tuple[Recorder, ServerThread]:
    recorder = Recorder(Starlette(routes=[Mount("/downloads", app=downloads_app(root))]))
    return recorder, ServerThread(recorder, **kwargs)


def rsa_key(uid: str) -> SecretKey:
    """A real RSA signing key like Elastic's, 2048 bits so that tests stay quick."""
    tsk = pysequoia.Tsk.generate(
        uid, cipher_suite=pysequoia.CipherSuite.RSA2k, profile=pysequoia.Profile.RFC4880
    )
    return SecretKey(tsk)


@pytest.fixture(scope="session")
def signing_key() -> SecretKey:
    return rsa_key("fleetgap artifacts test <artifacts@test.invalid>")


@pytest.fixture(scope="session")
def other_key() -> SecretKey:
    return rsa_key("someone else <other@test.invalid>")


@pytest.fixture(scope="session")
def public_key_file(tmp_path_factory, signing_key) -> Path:
    path = tmp_path_factory.mktemp("keys") / "test-signing.asc"
    path.write_text(signing_key.public_key.armored)
    return path


@pytest.fixture
def upstream(tmp_path) -> Iterator[Upstream]:
    root = tmp_path / "upstream"
    root.mkdir()
    recorder, server = serve_downloads(root)
    with server:
        yield Upstream(root, recorder, server)
        for gate in recorder.gates:
            gate.release.set()


def tls_context_for(ca) -> ssl.SSLContext:
    context = ssl.create_default_context()
    ca.configure_trust(context)
    return context
