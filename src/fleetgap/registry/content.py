"""Go ``http.ServeContent`` / ``http.ServeFile`` for Starlette (spec: epr-api §7).

One entry point, ``serve_content(request, content, headers=...)``, answers with the status,
headers and body Go's net/http (1.23+) would: Content-Type by extension then sniffing,
Last-Modified, Accept-Ranges, conditional requests (304/412), single and multipart byte
ranges (206) and 416 (beyond Go: at most MAX_RANGES ranges, sorted, overlaps merged:
``bound_ranges``). A ``Content`` is a file on disk (a full 200 is handed to the server
with ``http.response.pathsend`` when it offers it, e.g. Granian), a zip member, or bytes.

``headers`` are the headers the handler set before calling ServeContent (the registry sets
its two Cache-Control lines first); Go keeps them on 200/206/304/412 and drops
Cache-Control, Content-Encoding, ETag and Last-Modified on error answers (416, 404...).
"""

from __future__ import annotations

import calendar
import datetime as dt
import io
import math
import os
import re
import secrets
import stat
import struct
import zipfile
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import BinaryIO

import anyio
import anyio.to_thread
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response, StreamingResponse
from starlette.types import Message, Receive, Scope, Send

from fleetgap.registry.mimetypes import SNIFF_LENGTH, sniff
from fleetgap.registry.mimetypes import content_type as type_for_name

__all__ = [
    "Content",
    "PathResponse",
    "http_date",
    "http_error",
    "parse_http_date",
    "serve_content",
    "serve_file",
    "zip_modtime",
]

HeaderItems = Iterable[tuple[str, str]] | Mapping[str, str]

CHUNK_SIZE = 256 * 1024
# Bodies read as they are sent (zip members, ranges), per worker process: at most this many
# at once, a new one waits this long for a slot, and a client that takes nothing for
# SEND_DEADLINE seconds is hung up on (R2: 300 clients that never read held 430 MB).
MAX_STREAMS = 64
STREAM_SLOT_WAIT = 10.0
SEND_DEADLINE = 60.0
MAX_RANGES = 16  # an agent resumes with one range; a browser or curl asks for a few


@dataclass(frozen=True, slots=True)
class Content:
    """Something to serve: ``name`` picks the Content-Type by extension (Go's ``name``
    argument); ``modtime`` is POSIX seconds, None (or 0, the epoch) for "unknown" (then no
    Last-Modified). ``path`` is a regular file; ``opener`` returns a fresh seekable stream."""

    name: str
    size: int
    modtime: float | None
    path: str | None = None
    opener: Callable[[], BinaryIO] | None = None

    @classmethod
    def from_path(cls, path: str | os.PathLike[str], *, name: str | None = None) -> Content:
        """Stat a file on disk. Raises OSError (IsADirectoryError for a directory)."""
        full = os.path.abspath(path)
        info = os.stat(full)
        if stat.S_ISDIR(info.st_mode):
            raise IsADirectoryError(21, "is a directory", full)
        return cls(
            name=os.path.basename(full) if name is None else name,
            size=info.st_size,
            modtime=info.st_mtime,
            path=full,
        )

    @classmethod
    def from_zip(
        cls, archive: zipfile.ZipFile, member: zipfile.ZipInfo | str, *, name: str | None = None
    ) -> Content:
        """A member of an open zip; its time is what Go's archive/zip reports."""
        info = member if isinstance(member, zipfile.ZipInfo) else archive.getinfo(member)
        return cls(
            name=info.filename if name is None else name,
            size=info.file_size,
            modtime=zip_modtime(info),
            opener=lambda: archive.open(info),
        )

    @classmethod
    def from_bytes(cls, name: str, data: bytes, modtime: float | None = None) -> Content:
        return cls(name=name, size=len(data), modtime=modtime, opener=lambda: io.BytesIO(data))

    def open(self) -> BinaryIO:
        if self.opener is not None:
            return self.opener()
        if self.path is None:
            raise ValueError("Content has neither path nor opener")
        return open(self.path, "rb")  # noqa: SIM115 - closed by the caller


async def serve_content(
    request: Request,
    content: Content,
    *,
    headers: HeaderItems = (),
    content_type: str | None = None,
) -> Response:
    """Answer ``request`` with ``content`` exactly like Go's ``http.ServeContent``.

    ``headers``: set before the call, kept as separate lines (e.g. two Cache-Control);
    a Content-Type among them, or ``content_type``, disables the extension/sniff lookup;
    an ETag among them takes part in If-Match/If-None-Match/If-Range.
    """
    out = _Headers(headers)
    if content_type is not None:
        out.set("content-type", content_type)
    method = request.method
    modtime = content.modtime
    if not _is_zero_time(modtime):
        out.set("last-modified", http_date(modtime))  # type: ignore[arg-type]

    done, range_header = _check_preconditions(request, out.get("etag"), modtime)
    if done == 412:
        return _bare(412, out, method)
    if done == 304:
        out.delete("content-type", "content-length", "content-encoding")
        if out.get("etag"):
            out.delete("last-modified")
        return _bare(304, out, method)

    ctype = out.get("content-type")
    if ctype is None:
        ctype = type_for_name(content.name, None)
        if ctype is None:
            ctype = sniff(await anyio.to_thread.run_sync(_read_head, content))
        out.set("content-type", ctype)

    size = content.size
    try:
        ranges = parse_range(range_header, size)
    except _NoOverlapError as error:
        if size != 0:  # an empty file ignores the Range header instead (Go 1.24+)
            out.set("content-range", f"bytes */{size}")
            return _serve_error(out, str(error), 416, method)
        ranges = []
    except _InvalidRangeError as error:
        return _serve_error(out, str(error), 416, method)
    if sum(length for _, length in ranges) > size:
        ranges = []  # more bytes asked than the file has: Go ignores the Range header
    ranges = bound_ranges(ranges)

    status = 200
    pieces: list[bytes | tuple[int, int]] = [(0, size)]
    if len(ranges) == 1:
        status = 206
        start, length = ranges[0]
        pieces = [ranges[0]]
        out.set("content-range", f"bytes {start}-{start + length - 1}/{size}")
    elif len(ranges) > 1:
        status = 206
        boundary = secrets.token_hex(30)  # like Go's mime/multipart: 30 random bytes in hex
        pieces = _multipart_pieces(ranges, ctype, size, boundary)
        out.set("content-type", "multipart/byteranges; boundary=" + boundary)
    out.set("accept-ranges", "bytes")
    send_size = sum(len(p) if isinstance(p, bytes) else p[1] for p in pieces)
    if ranges or out.get("content-encoding") is None:
        out.set("content-length", str(send_size))

    if method == "HEAD":
        return _bare(status, out, method)
    if status == 200 and content.path is not None:
        return PathResponse(status, out.raw(), content, pieces)
    return _streaming(status, out.raw(), content, pieces)


async def serve_file(
    request: Request,
    path: str | os.PathLike[str],
    *,
    headers: HeaderItems = (),
    name: str | None = None,
) -> Response:
    """Go ``http.ServeFile`` for one file: a missing file is a 404 ``404 page not found``,
    a permission problem a 403, a directory a 404 (Go would list it; spec: epr-api §3.9)."""
    out = _Headers(headers)
    if ".." in request.url.path.replace("\\", "/").split("/"):
        return http_error("invalid URL path", 400, headers=out.items, method=request.method)
    try:
        content = await anyio.to_thread.run_sync(lambda: Content.from_path(path, name=name))
    except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
        return _serve_error(out, "404 page not found", 404, request.method)
    except PermissionError:
        return _serve_error(out, "403 Forbidden", 403, request.method)
    except OSError:
        return _serve_error(out, "500 Internal Server Error", 500, request.method)
    return await serve_content(request, content, headers=out.items)


def http_error(
    message: str, status: int, *, headers: HeaderItems = (), method: str = "GET"
) -> Response:
    """Go ``http.Error``: body ``message + "\\n"`` as ``text/plain; charset=utf-8`` with
    ``X-Content-Type-Options: nosniff``; ``headers`` set earlier are kept (minus
    Content-Length)."""
    out = _Headers(headers)
    out.delete("content-length")
    out.set("content-type", "text/plain; charset=utf-8")
    out.set("x-content-type-options", "nosniff")
    # A message may quote a query value that was not UTF-8 (kept as surrogate escapes by
    # parse_query): Go writes those bytes as they came.
    body = (message + "\n").encode("utf-8", "surrogateescape")
    out.set("content-length", str(len(body)))
    return _bare(status, out, method, b"" if method == "HEAD" else body)


_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def http_date(seconds: float) -> str:
    """Go ``http.TimeFormat`` of a POSIX time, whole seconds: ``Mon, 02 Jan 2006 15:04:05 GMT``."""
    moment = _EPOCH + dt.timedelta(seconds=math.floor(seconds))
    return (
        f"{_DAYS[moment.weekday()]}, {moment.day:02d} {_MONTHS[moment.month - 1]} "
        f"{moment.year:04d} {moment.hour:02d}:{moment.minute:02d}:{moment.second:02d} GMT"
    )


_MONTH_GROUP = "(?i:(" + "|".join(_MONTHS) + "))"
_SHORT_DAY = "(?i:" + "|".join(_DAYS) + ")"
_LONG_DAY = "(?i:Monday|Tuesday|Wednesday|Thursday|Friday|Saturday|Sunday)"
_CLOCK = r"(\d\d?):(\d\d):(\d\d)(?:[.,]\d+)?"
_TIME_FORMAT = re.compile(rf"{_SHORT_DAY}, (\d\d) {_MONTH_GROUP} (\d{{4}}) {_CLOCK} GMT")
_RFC850 = re.compile(rf"{_LONG_DAY}, (\d\d)-{_MONTH_GROUP}-(\d\d) {_CLOCK} [A-Z]{{3,5}}")
_ANSIC = re.compile(rf"{_SHORT_DAY} {_MONTH_GROUP} [ ]?(\d\d?) {_CLOCK} (\d{{4}})")


def parse_http_date(value: str) -> int | None:
    """Go ``http.ParseTime`` (TimeFormat, RFC 850, ANSI C) to POSIX seconds; None if invalid.
    Unlike ``email.utils``, year ``0001`` stays year 1 (Go's zero time)."""
    if match := _TIME_FORMAT.fullmatch(value):
        day, month, year, hour, minute, second = match.groups()
    elif match := _RFC850.fullmatch(value):
        day, month, short_year, hour, minute, second = match.groups()
        year = str(int(short_year) + (1900 if int(short_year) >= 69 else 2000))
    elif match := _ANSIC.fullmatch(value):
        month, day, hour, minute, second, year = match.groups()
    else:
        return None
    month_number = [m.lower() for m in _MONTHS].index(month.lower()) + 1
    try:
        moment = dt.datetime(int(year), month_number, int(day), int(hour), int(minute), int(second))
    except ValueError:
        return None
    return calendar.timegm(moment.timetuple())


def zip_modtime(info: zipfile.ZipInfo) -> float:
    """A zip member's time as Go's archive/zip reports it: the extended-timestamp, Info-ZIP
    Unix or NTFS extra field when present, else the MS-DOS date and time read as UTC."""
    modified = _extra_field_time(info.extra)
    if modified is not None:
        return modified
    year, month, day, hour, minute, second = info.date_time
    # Go's time.Date normalises out-of-range fields (month 0, day 0, second 60...).
    years, month_index = divmod(year * 12 + month - 1, 12)
    days = dt.date(years, month_index + 1, 1).toordinal() + day - 1 - _EPOCH_ORDINAL
    return float(days * 86400 + hour * 3600 + minute * 60 + second)


# -- preconditions (RFC 7232 section 6, in Go's order) ----------------------------------

_TRIM = " \t\r\n"
_EPOCH = dt.datetime(1970, 1, 1)
_EPOCH_ORDINAL = _EPOCH.toordinal()
_GO_ZERO_TIME = -62135596800  # 0001-01-01T00:00:00Z


def _is_zero_time(modtime: float | None) -> bool:
    return modtime is None or modtime == 0 or modtime == _GO_ZERO_TIME


def _check_preconditions(
    request: Request, etag: str | None, modtime: float | None
) -> tuple[int | None, str]:
    """(412 or 304 when answered, else None; the Range header still to honour)."""
    method = request.method
    headers = request.headers
    verdict = _if_match(headers.get("if-match", ""), etag)
    if verdict is None:
        verdict = _if_unmodified_since(headers.get("if-unmodified-since", ""), modtime)
    if verdict is False:
        return 412, ""
    none_match = _if_none_match(headers.get("if-none-match", ""), etag)
    if none_match is False:
        return (304 if method in ("GET", "HEAD") else 412), ""
    since = headers.get("if-modified-since", "")
    if none_match is None and _if_modified_since(method, since, modtime) is False:
        return 304, ""
    range_header = headers.get("range", "")
    if range_header and _if_range(method, headers.get("if-range", ""), etag, modtime) is False:
        range_header = ""
    return None, range_header


def _if_match(value: str, etag: str | None) -> bool | None:
    """Go `checkIfMatch`: None when absent; True on `*` or a strong match."""
    if not value:
        return None
    return any(tag == "*" or _strong_match(tag, etag or "") for tag in _etag_list(value))


def _if_none_match(value: str, etag: str | None) -> bool | None:
    """Go `checkIfNoneMatch`: None when absent; False (the condition fails) on `*` or a
    weak match."""
    if not value:
        return None
    mine = (etag or "").removeprefix("W/")
    return not any(tag == "*" or tag.removeprefix("W/") == mine for tag in _etag_list(value))


def _etag_list(value: str) -> Iterator[str]:
    """The entity tags of an If-Match / If-None-Match list, and `*`, until one is malformed."""
    while True:
        value = value.strip(_TRIM)
        if not value:
            return
        if value[0] == ",":
            value = value[1:]
            continue
        if value[0] == "*":
            yield "*"
            return
        tag, value = _scan_etag(value)
        if not tag:
            return
        yield tag


def _if_unmodified_since(value: str, modtime: float | None) -> bool | None:
    if not value or _is_zero_time(modtime):
        return None
    limit = parse_http_date(value)
    if limit is None:
        return None
    return math.floor(modtime) <= limit  # type: ignore[arg-type]


def _if_modified_since(method: str, value: str, modtime: float | None) -> bool | None:
    if method not in ("GET", "HEAD") or not value or _is_zero_time(modtime):
        return None
    since = parse_http_date(value)
    if since is None:
        return None
    return not math.floor(modtime) <= since  # type: ignore[arg-type]


def _if_range(method: str, value: str, etag: str | None, modtime: float | None) -> bool | None:
    if method not in ("GET", "HEAD") or not value:
        return None
    tag, _ = _scan_etag(value)
    if tag:
        return _strong_match(tag, etag or "")
    if modtime is None:  # Go checks IsZero here, not the epoch
        return False
    moment = parse_http_date(value)
    return moment is not None and moment == math.floor(modtime)


def _scan_etag(value: str) -> tuple[str, str]:
    value = value.strip(_TRIM)
    start = 2 if value.startswith("W/") else 0
    if len(value) - start < 2 or value[start] != '"':
        return "", ""
    for index in range(start + 1, len(value)):
        code = ord(value[index])
        if code == 0x22:
            return value[: index + 1], value[index + 1 :]
        if not (code == 0x21 or 0x23 <= code <= 0x7E or code >= 0x80):
            return "", ""
    return "", ""


def _strong_match(a: str, b: str) -> bool:
    return a == b and a != "" and a[0] == '"'


# -- ranges -----------------------------------------------------------------------------


class _InvalidRangeError(ValueError):
    def __init__(self) -> None:
        super().__init__("invalid range")


class _NoOverlapError(ValueError):
    def __init__(self) -> None:
        super().__init__("invalid range: failed to overlap")


_INT64 = re.compile(r"[+-]?[0-9]+")


def _parse_int(text: str) -> int | None:
    """Go ``strconv.ParseInt(text, 10, 64)``."""
    if not _INT64.fullmatch(text):
        return None
    number = int(text)
    return number if -(2**63) <= number < 2**63 else None


def parse_range(header: str, size: int) -> list[tuple[int, int]]:
    """Go's parseRange: ``(start, length)`` pairs, clipped to ``size``. Raises
    _InvalidRangeError, or _NoOverlapError when no range starts inside the content."""
    if not header:
        return []
    if not header.startswith("bytes="):
        raise _InvalidRangeError
    ranges: list[tuple[int, int]] = []
    no_overlap = False
    for spec in header[len("bytes=") :].split(","):
        spec = spec.strip(_TRIM)
        if not spec:
            continue
        first, dash, last = spec.partition("-")
        if not dash:
            raise _InvalidRangeError
        first, last = first.strip(_TRIM), last.strip(_TRIM)
        if first == "":
            # suffix range: the last N bytes
            if last == "" or last[0] == "-":
                raise _InvalidRangeError
            count = _parse_int(last)
            if count is None or count < 0:
                raise _InvalidRangeError
            count = min(count, size)
            ranges.append((size - count, count))
            continue
        start = _parse_int(first)
        if start is None or start < 0:
            raise _InvalidRangeError
        if start >= size:
            no_overlap = True
            continue
        if last == "":
            ranges.append((start, size - start))
            continue
        end = _parse_int(last)
        if end is None or start > end:
            raise _InvalidRangeError
        end = min(end, size - 1)
        ranges.append((start, end - start + 1))
    if no_overlap and not ranges:
        raise _NoOverlapError
    return ranges


def bound_ranges(ranges: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Beyond Go: several ranges are sent in ascending order, overlapping ones merged
    (RFC 9110 §14.3 allows both), so a compressed zip member is read once, front to back;
    more than MAX_RANGES left means the Range header is ignored (a 200), as Apache does."""
    if len(ranges) < 2:
        return ranges
    merged: list[tuple[int, int]] = []
    for start, length in sorted(ranges):
        if merged and start < merged[-1][0] + merged[-1][1]:
            last_start, last_length = merged[-1]
            end = max(last_start + last_length, start + length)
            merged[-1] = (last_start, end - last_start)
        else:
            merged.append((start, length))
    return merged if len(merged) <= MAX_RANGES else []


def _multipart_pieces(
    ranges: list[tuple[int, int]], ctype: str, size: int, boundary: str
) -> list[bytes | tuple[int, int]]:
    """Go's multipart/byteranges body (mime/multipart Writer, part headers sorted)."""
    pieces: list[bytes | tuple[int, int]] = []
    for index, (start, length) in enumerate(ranges):
        head = (
            ("\r\n" if index else "")
            + f"--{boundary}\r\n"
            + f"Content-Range: bytes {start}-{start + length - 1}/{size}\r\n"
            + f"Content-Type: {ctype}\r\n\r\n"
        )
        pieces.append(head.encode("latin-1"))
        pieces.append((start, length))
    pieces.append(f"\r\n--{boundary}--\r\n".encode("latin-1"))
    return pieces


# -- responses --------------------------------------------------------------------------


class _Headers:
    """Ordered header lines with Go Header.Set/Get/Del semantics (case-insensitive)."""

    __slots__ = ("items",)

    def __init__(self, headers: HeaderItems) -> None:
        source = headers.items() if isinstance(headers, Mapping) else headers
        self.items: list[tuple[str, str]] = [(k.lower(), v) for k, v in source]

    def get(self, name: str) -> str | None:
        for key, value in self.items:
            if key == name:
                return value
        return None

    def set(self, name: str, value: str) -> None:
        self.delete(name)
        self.items.append((name, value))

    def delete(self, *names: str) -> None:
        self.items = [(k, v) for k, v in self.items if k not in names]

    def raw(self) -> list[tuple[bytes, bytes]]:
        return [(k.encode("latin-1"), v.encode("latin-1")) for k, v in self.items]


def _read_head(content: Content) -> bytes:
    with content.open() as stream:
        return stream.read(SNIFF_LENGTH)


def _serve_error(out: _Headers, message: str, status: int, method: str) -> Response:
    # Go 1.23+ serveError: these describe the content, not the error text.
    out.delete("cache-control", "content-encoding", "etag", "last-modified")
    return http_error(message, status, headers=out.items, method=method)


def _bare(status: int, out: _Headers, method: str, body: bytes = b"") -> Response:
    """A response whose headers are exactly ``out`` (Go adds Content-Length: 0 to an
    empty answer that may have a body, except for HEAD)."""
    has_length = out.get("content-length") is not None or out.get("transfer-encoding") is not None
    if status not in (204, 304) and method != "HEAD" and not has_length:
        out.set("content-length", str(len(body)))
    response = Response(content=body, status_code=status)
    response.raw_headers = out.raw()
    return response


def _streaming(
    status: int,
    raw_headers: list[tuple[bytes, bytes]],
    content: Content,
    pieces: list[bytes | tuple[int, int]],
) -> Response:
    response = _BoundedStream(_read_pieces(content, pieces), status_code=status)
    response.raw_headers = raw_headers
    return response


class _BoundedStream(StreamingResponse):
    """A body read as it is sent (a zip member, ranges of a file), within two bounds per
    worker: at most MAX_STREAMS at once (another waits STREAM_SLOT_WAIT for a slot, then
    gets 503), and a client that takes no part of it for SEND_DEADLINE is hung up on. Each
    stream holds a decompressor and buffers; a client that never reads held them forever."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        limiter = _stream_slots()
        try:
            with anyio.fail_after(STREAM_SLOT_WAIT):
                await limiter.acquire()
        except TimeoutError:
            busy = PlainTextResponse("too many downloads in progress, retry later\n", 503)
            busy.headers["retry-after"] = "5"
            await busy(scope, receive, send)
            return
        try:
            await super().__call__(scope, receive, _with_deadline(send))
        except _Stalled:
            pass  # the server closes the connection: the response is short of its length
        finally:
            limiter.release()


class _Stalled(Exception):
    pass


def _with_deadline(send: Send) -> Send:
    async def send_within_deadline(message: Message) -> None:
        try:
            with anyio.fail_after(SEND_DEADLINE):
                await send(message)
        except TimeoutError:
            raise _Stalled from None

    return send_within_deadline


_STREAM_SLOTS: anyio.CapacityLimiter | None = None


def _stream_slots() -> anyio.CapacityLimiter:
    global _STREAM_SLOTS
    if _STREAM_SLOTS is None:  # made in the worker's event loop, on first use
        _STREAM_SLOTS = anyio.CapacityLimiter(MAX_STREAMS)
    return _STREAM_SLOTS


class PathResponse(Response):
    """A whole file from disk: ``http.response.pathsend`` where the server offers it
    (Granian sends the file itself), else streamed in chunks."""

    def __init__(
        self,
        status: int,
        raw_headers: list[tuple[bytes, bytes]],
        content: Content,
        pieces: list[bytes | tuple[int, int]],
    ) -> None:
        self.status_code = status
        self.raw_headers = raw_headers
        self.content = content
        self.pieces = pieces
        self.background = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if "http.response.pathsend" in scope.get("extensions", {}):
            start = {"type": "http.response.start", "status": self.status_code}
            await send({**start, "headers": self.raw_headers})
            await send({"type": "http.response.pathsend", "path": self.content.path})
            return
        await _streaming(self.status_code, self.raw_headers, self.content, self.pieces)(
            scope, receive, send
        )


async def _read_pieces(
    content: Content, pieces: list[bytes | tuple[int, int]]
) -> AsyncIterator[bytes]:
    stream = await anyio.to_thread.run_sync(content.open)
    try:
        for piece in pieces:
            if isinstance(piece, bytes):
                yield piece
                continue
            start, remaining = piece
            if stream.tell() != start:
                await anyio.to_thread.run_sync(stream.seek, start)
            while remaining > 0:
                chunk = await anyio.to_thread.run_sync(stream.read, min(CHUNK_SIZE, remaining))
                if not chunk:
                    return  # the file shrank: the server ends the short response
                remaining -= len(chunk)
                yield chunk
    finally:
        stream.close()


def _extra_field_time(extra: bytes) -> float | None:
    modified: float | None = None
    offset = 0
    while len(extra) - offset >= 4:
        tag, size = struct.unpack_from("<HH", extra, offset)
        offset += 4
        if size > len(extra) - offset:
            break
        field = extra[offset : offset + size]
        offset += size
        if tag == 0x5455:  # extended timestamp: flags, then mtime when bit 0 is set
            if len(field) >= 5 and field[0] & 1:
                modified = float(int.from_bytes(field[1:5], "little"))
        elif tag in (0x000D, 0x5855):  # Unix / Info-ZIP Unix: atime, mtime
            if len(field) >= 8:
                modified = float(int.from_bytes(field[4:8], "little"))
        elif tag == 0x000A:  # NTFS: reserved, then attributes; tag 1 holds three 8-byte times
            modified = _ntfs_time(field[4:]) or modified
    return modified


def _ntfs_time(attributes: bytes) -> float | None:
    while len(attributes) >= 4:
        tag, size = struct.unpack_from("<HH", attributes)
        value, attributes = attributes[4 : 4 + size], attributes[4 + size :]
        if tag == 1 and size == 24:
            ticks = int.from_bytes(value[:8], "little", signed=True)  # 100 ns since 1601
            seconds, rest = divmod(ticks, 10_000_000)
            return seconds - 11_644_473_600 + rest / 10_000_000
    return None
