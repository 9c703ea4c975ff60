"""uvicorn's h11 protocol with a deadline for the request head, as Granian has.

uvicorn waits for a request's headers without any limit: a client that opens a connection
and sends its headers a byte at a time holds the connection (and a slot of the process)
for as long as it likes. Granian (hyper) closes a connection whose request head has not
arrived 30 seconds after it began; this protocol does the same, counting from when the
connection opens or the previous response ends, so a connection that sends nothing at all
is closed too.
"""

from __future__ import annotations

import asyncio

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

HEADER_TIMEOUT = 30.0  # seconds; Granian's HTTP1Settings.header_read_timeout


class HeaderDeadlineProtocol(H11Protocol):
    """Closes the connection when a request head takes longer than `HEADER_TIMEOUT`."""

    _head_deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_head_deadline()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing():
            self._arm_head_deadline()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_head_deadline()
        super().connection_lost(exc)

    def _arm_head_deadline(self) -> None:
        self._disarm_head_deadline()
        self._head_deadline = self.loop.call_later(HEADER_TIMEOUT, self._head_overdue)

    def _disarm_head_deadline(self) -> None:
        if self._head_deadline is not None:
            self._head_deadline.cancel()
            self._head_deadline = None

    def _head_overdue(self) -> None:
        self._head_deadline = None
        # Their state leaves IDLE once h11 has the whole request head; a request being
        # answered (or its body being read) is not held to this deadline.
        if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
            self.transport.close()
