"""Answers already known, sent straight from the server's call to the bytes.

Every answer of the registry that depends only on the method, the path and the query (the
`/search` and `/categories` answers kept per query, the package documents rendered at index
time, `/`, `/health`, `/favicon.ico`) and every whole package file (zips, signatures and
static files of directory packages) is recorded by the registry app (`remember`) the first
time it is computed, as ready-to-send header lines and body. The next request for it is
answered here, in front of routing, middleware and Starlette's Request/Response objects,
and still logged (`logs.RequestLog`) and counted (`metrics.RequestMetrics`) as every other
request.

A file answer is used only for requests without Range or conditional headers, and only
while the file's size and mtime are those recorded (one `stat`); then the server sends the
file itself (`http.response.pathsend`, which Granian offers), or it is streamed where it
does not. A new index (watcher, reload) forgets every answer.
"""

from __future__ import annotations

from time import perf_counter_ns
from typing import TYPE_CHECKING

import anyio.to_thread
from starlette.types import ASGIApp, Receive, Scope, Send

from fleetgap.registry.known import Answer, KnownAnswers
from fleetgap.serving.logs import RequestLog
from fleetgap.serving.shedding import CHUNK, TOO_MANY_BODY, TOO_MANY_HEADERS, DownloadLimits

if TYPE_CHECKING:
    from fleetgap.serving.metrics import RequestMetrics

LARGE_BODY = 1 << 20  # known bodies above this are sent in pieces of BODY_PIECE
BODY_PIECE = 256 << 10


class FastPath:
    """In front of the whole app: a known answer is sent here, anything else goes on."""

    def __init__(
        self,
        app: ASGIApp,
        known: KnownAnswers,
        log: RequestLog,
        metrics: RequestMetrics | None = None,
        limits: DownloadLimits | None = None,
    ) -> None:
        self.app = app
        self.known = known
        self.log = log
        self.metrics = metrics
        self.limits = limits if limits is not None and limits.on else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            answer = self.known.lookup(scope)
            if answer is not None:
                await self.answer(scope, answer, send)
                return
        await self.app(scope, receive, send)

    async def answer(self, scope: Scope, answer: Answer, send: Send) -> None:
        started = perf_counter_ns()
        metrics = self.metrics
        if metrics is not None:
            metrics.in_flight.inc()
        scope["epr.route"] = answer.route
        limits = self.limits if answer.download else None
        status, written = answer.status, 0
        try:
            body = answer.body
            if limits is None and answer.path is None and len(body) <= LARGE_BODY:
                # the common case, without a call
                await send(
                    {"type": "http.response.start", "status": status, "headers": answer.headers}
                )
                await send({"type": "http.response.body", "body": body})
                written = len(body)
            elif limits is None:
                written = await _send(scope, answer, send)
            elif limits.enter():
                try:
                    written = await _send(scope, answer, limits.sender(send))
                finally:
                    limits.leave()
            else:
                status = 429
                refusal = Answer(429, TOO_MANY_HEADERS, TOO_MANY_BODY, answer.route)
                written = await _send(scope, refusal, send)
        finally:
            if scope["path"] != "/health" or scope["query_string"]:
                self.log.write(scope, status, written, started)
            if metrics is not None:
                metrics.in_flight.dec()
                metrics.observe(scope, status, written, started * 1e-9)


async def _send(scope: Scope, answer: Answer, send: Send) -> int:
    """Send `answer`; the number of body bytes."""
    await send({"type": "http.response.start", "status": answer.status, "headers": answer.headers})
    if answer.path is None:
        return await _send_body(send, answer.body)
    if "http.response.pathsend" in scope.get("extensions", {}):
        await send({"type": "http.response.pathsend", "path": answer.path})
        return answer.size
    return await _stream(send, answer.path)


async def _send_body(send: Send, body: bytes) -> int:
    """A body from memory; a large one in pieces. Granian copies each body it is handed and
    holds the copy until it is sent: 32 clients of `/search?all=true` (13 MB) held 300 MB
    of copies sent whole, a tenth of that in 256 KiB pieces, and were served faster."""
    if len(body) <= LARGE_BODY:
        await send({"type": "http.response.body", "body": body})
        return len(body)
    last = len(body) - BODY_PIECE
    for start in range(0, len(body), BODY_PIECE):
        piece = body[start : start + BODY_PIECE]
        await send({"type": "http.response.body", "body": piece, "more_body": start < last})
    return len(body)


async def _stream(send: Send, path: str) -> int:
    """A whole file in chunks, for servers without pathsend (uvicorn)."""
    written = 0
    stream = await anyio.to_thread.run_sync(open, path, "rb")
    try:
        while chunk := await anyio.to_thread.run_sync(stream.read, CHUNK):
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
            written += len(chunk)
    finally:
        stream.close()
    await send({"type": "http.response.body", "body": b"", "more_body": False})
    return written
