"""Load shedding for upgrade storms: `--max-downloads` and `--download-rate`.

A download is a GET of a package zip (`/epr/.../*.zip`) or of an agent artifact under
`/downloads/` (not its `.sha512`/`.asc` sidecars, not a listing). With `--max-downloads N`
a worker process serves at most N at once and answers the next one `429 Too Many Requests`
with `Retry-After` at once, which the agent's downloader retries; `/health`, `/search`,
the key routes and every other answer are never refused. With `--download-rate` each
download is paced to that many bytes per second.

Both are per worker process (Granian's `--workers 2` serves up to 2 × N downloads). A
slot is held until the last byte has been handed to the server: Granian gives no signal
when a file sent with `http.response.pathsend` is done (it returns while the file is still
on its way), so while either limit is on, downloads are streamed from Python in chunks,
whose writes wait for the client.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import anyio
import anyio.to_thread
from starlette.types import ASGIApp, Message, Receive, Scope, Send

RETRY_AFTER = 10  # seconds; an agent retries a refused download with its own backoff
_SIDECARS = (".sha512", ".asc")
CHUNK = 1 << 20


def is_download(scope: Scope) -> bool:
    """A GET that counts against --max-downloads (see the module docstring)."""
    if scope.get("method") != "GET":
        return False
    path: str = scope.get("path", "")
    if path.startswith("/epr/"):
        return path.endswith(".zip")
    if path.startswith("/downloads/"):
        return not path.endswith("/") and not path.endswith(_SIDECARS)
    return False


@dataclass
class DownloadLimits:
    """The two limits of one worker process; 0 is off."""

    max_downloads: int = 0
    rate: int = 0  # bytes per second per download
    active: int = 0

    @property
    def on(self) -> bool:
        return bool(self.max_downloads or self.rate)

    def enter(self) -> bool:
        """Take a slot; False when all are taken. (One event loop per process: no lock.)"""
        if self.max_downloads and self.active >= self.max_downloads:
            return False
        self.active += 1
        return True

    def leave(self) -> None:
        self.active -= 1

    def sender(self, send: Send) -> Send:
        """`send`, with a file turned into chunks (and paced when a rate is set)."""
        return _PacedSend(send, self.rate)


TOO_MANY_BODY = b"too many downloads in progress, retry later\n"
TOO_MANY_HEADERS = [
    (b"content-type", b"text/plain; charset=utf-8"),
    (b"x-content-type-options", b"nosniff"),
    (b"retry-after", str(RETRY_AFTER).encode()),
    (b"content-length", str(len(TOO_MANY_BODY)).encode()),
]


async def too_many(send: Send) -> None:
    await send({"type": "http.response.start", "status": 429, "headers": TOO_MANY_HEADERS})
    await send({"type": "http.response.body", "body": TOO_MANY_BODY})


class ShedDownloads:
    """In front of the apps that serve downloads: the limits above for every download
    that is not answered by the fast path (which applies them itself)."""

    def __init__(self, app: ASGIApp, limits: DownloadLimits) -> None:
        self.app = app
        self.limits = limits

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not is_download(scope):
            await self.app(scope, receive, send)
            return
        limits = self.limits
        if not limits.enter():
            await too_many(send)
            return
        try:
            await self.app(scope, receive, limits.sender(send))
        finally:
            limits.leave()


class _PacedSend:
    """Sends a `http.response.pathsend` as body chunks read here, and paces every body
    at `rate` bytes/s (0: as fast as the client reads)."""

    def __init__(self, send: Send, rate: int) -> None:
        self.send = send
        self.rate = rate
        self.sent = 0
        self.started = 0.0

    async def __call__(self, message: Message) -> None:
        kind = message["type"]
        if kind == "http.response.pathsend":
            await self._file(str(message["path"]))
        elif kind == "http.response.body" and self.rate:
            body: bytes = message.get("body", b"")
            more = message.get("more_body", False)
            step = max(1, min(CHUNK, self.rate // 4))
            for offset in range(0, len(body), step):
                await self._paced(body[offset : offset + step], True)
            if not more or not body:
                await self.send({"type": "http.response.body", "body": b"", "more_body": more})
        else:
            await self.send(message)

    async def _file(self, path: str) -> None:
        step = max(1, min(CHUNK, self.rate // 4)) if self.rate else CHUNK
        stream = await anyio.to_thread.run_sync(open, path, "rb")
        try:
            while chunk := await anyio.to_thread.run_sync(stream.read, step):
                await self._paced(chunk, True)
        finally:
            stream.close()
        await self.send({"type": "http.response.body", "body": b"", "more_body": False})

    async def _paced(self, chunk: bytes, more: bool) -> None:
        if self.rate:
            if not self.started:
                self.started = time.monotonic()
            ahead = self.sent / self.rate - (time.monotonic() - self.started)
            if ahead > 0:
                await anyio.sleep(ahead)
        await self.send({"type": "http.response.body", "body": chunk, "more_body": more})
        self.sent += len(chunk)
