"""What an ASGI response was: its status and how many body bytes went out.

Shared by the request log and the metrics middleware; a body sent with
`http.response.pathsend` (Granian sends the file itself) counts as the file's size.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from starlette.types import Message, Send


@dataclass
class ResponseMeter:
    send: Send
    status: int = 0
    written: int = 0

    async def __call__(self, message: Message) -> None:
        kind = message["type"]
        if kind == "http.response.start":
            self.status = message["status"]
        elif kind == "http.response.body":
            self.written += len(message.get("body", b""))
        elif kind == "http.response.pathsend":
            self.written += _file_size(message.get("path"))
        await self.send(message)


def _file_size(path: object) -> int:
    try:
        return os.stat(str(path)).st_size
    except OSError:
        return 0
