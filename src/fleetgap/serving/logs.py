"""Logging for `fleetgap serve`: ECS JSON lines (default) or a console format, and the
per-request log line of Elastic's registry.

spec: epr-api §11.3. Keys are written flat and dotted as Go's ecszap writes them
(`log.level`, `http.response.code`), one JSON object per line on stderr.
"""

from __future__ import annotations

import asyncio
import atexit
import functools
import ipaddress
import json
import logging
import logging.config
import os
import re
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, AnyStr

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from fleetgap import __version__
from fleetgap.config import Settings
from fleetgap.errors import printable, without_userinfo
from fleetgap.registry.bounded import BoundedCache
from fleetgap.serving.response_meter import ResponseMeter

ECS_VERSION = "1.6.0"
REQUEST_LOGGER = "http"

# zap level names; dpanic/panic/fatal have no Python twin and map to CRITICAL.
_LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warn": logging.WARNING,
    "error": logging.ERROR,
    "dpanic": logging.CRITICAL,
    "panic": logging.CRITICAL,
    "fatal": logging.CRITICAL,
}
_ZAP_NAMES = {
    logging.DEBUG: "debug",
    logging.INFO: "info",
    logging.WARNING: "warn",
    logging.ERROR: "error",
    logging.CRITICAL: "fatal",
}


def configure(settings: Settings) -> None:
    """Install the logging configuration in this process."""
    logging.config.dictConfig(logging_config(settings))


def logging_config(settings: Settings) -> dict[str, Any]:
    """A `logging.config.dictConfig` dict; also handed to Granian for its own loggers."""
    formatter = (
        {"()": "fleetgap.serving.logs.EcsFormatter", "service_name": settings.service_name}
        if settings.log_type == "ecs"
        else {"()": "fleetgap.serving.logs.ConsoleFormatter"}
    )
    level = _LEVELS[settings.log_level]
    handler = {"class": "logging.StreamHandler", "stream": "ext://sys.stderr", "formatter": "main"}
    quiet = {"handlers": [], "level": logging.CRITICAL + 1, "propagate": False}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"main": formatter},
        "handlers": {"stderr": handler},
        "root": {"handlers": ["stderr"], "level": level},
        "loggers": {
            # Granian and uvicorn messages go out in the same format; their access logs are
            # off because RequestLogMiddleware writes the registry's own request line.
            "_granian": {"handlers": ["stderr"], "level": level, "propagate": False},
            "granian.access": quiet,
            "uvicorn": {"handlers": ["stderr"], "level": level, "propagate": False},
            "uvicorn.access": quiet,
            # httpx and httpcore log every request, URL and user-info included, at INFO
            # and DEBUG; what fails reaches the log through fleetgap's own messages.
            "httpx": {"level": logging.WARNING},
            "httpcore": {"level": logging.WARNING},
        },
    }


class EcsFormatter(logging.Formatter):
    """One ECS JSON object per record; extra fields come from `extra={"ecs": {...}}`."""

    def __init__(self, service_name: str = "package-registry") -> None:
        super().__init__()
        self.service_name = service_name
        self.environment = os.environ.get("ELASTIC_APM_ENVIRONMENT", "")
        # what follows a record's own fields, pre-formatted for RequestLog
        service = {"service.name": service_name, "service.version": __version__}
        if self.environment:
            service["service.environment"] = self.environment
        service["ecs.version"] = ECS_VERSION
        self.tail = ", " + json.dumps(service, ensure_ascii=False)[1:] + "\n"

    def format(self, record: logging.LogRecord) -> str:
        document: dict[str, Any] = {
            "log.level": _ZAP_NAMES.get(record.levelno, record.levelname.lower()),
            "@timestamp": _timestamp(record.created),
            "log.logger": record.name,
            "log.origin": {
                "file.name": record.filename,
                "file.line": record.lineno,
                "function": record.funcName,
            },
            "message": without_userinfo(record.getMessage()),
        }
        if record.name == REQUEST_LOGGER:
            del document["log.origin"]  # Go logs requests with WithCaller(false)
        fields = getattr(record, "ecs", None)
        if isinstance(fields, Mapping):
            document.update(fields)
        if record.exc_info:
            document["error.message"] = without_userinfo(str(record.exc_info[1]))
            document["error.stack_trace"] = without_userinfo(self.formatException(record.exc_info))
        document["service.name"] = self.service_name
        document["service.version"] = __version__
        if self.environment:
            document["service.environment"] = self.environment
        document["ecs.version"] = ECS_VERSION
        return _json(document)


class ConsoleFormatter(logging.Formatter):
    """The `dev` log type: zap's development console layout, fields as JSON at the end."""

    def format(self, record: logging.LogRecord) -> str:
        parts = [
            _timestamp(record.created),
            _ZAP_NAMES.get(record.levelno, record.levelname.lower()).upper(),
            record.name,
            printable(without_userinfo(record.getMessage())),  # a request's path, too
        ]
        fields = getattr(record, "ecs", None)
        if isinstance(fields, Mapping) and fields:
            parts.append(_json(dict(fields)))
        line = "\t".join(parts)
        if record.exc_info:
            line += "\n" + without_userinfo(self.formatException(record.exc_info))
        return line


def _timestamp(created: float) -> str:
    return (
        datetime.fromtimestamp(created, UTC)
        .isoformat(timespec="milliseconds")
        .replace("+00:00", "Z")
    )


class RequestLogMiddleware:
    """One info line per request from logger `http`, with the fields of spec §11.3.

    `/health` (exactly, as Go compares RequestURI) is not logged. The lines still waiting
    in the buffer are written when the server shuts the app down (lifespan shutdown, which
    Granian and uvicorn send on a graceful stop and when a worker is replaced on SIGHUP).
    """

    def __init__(self, app: ASGIApp, log: RequestLog | None = None) -> None:
        self.app = app
        self.log = log or RequestLog()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self.app(scope, receive, self._flushing_on_shutdown(send))
            return
        if scope["type"] != "http" or (
            scope.get("path") == "/health" and not scope.get("query_string")
        ):
            await self.app(scope, receive, send)
            return
        started = time.perf_counter_ns()
        meter = ResponseMeter(send)
        try:
            await self.app(scope, receive, meter)
        finally:
            self.log.write(scope, meter.status or 500, meter.written, started)

    def _flushing_on_shutdown(self, send: Send) -> Send:
        async def lifespan_send(message: Message) -> None:
            if message["type"].startswith("lifespan.shutdown"):
                self.log.flush()
            await send(message)

        return lifespan_send


class RequestLog:
    """Writes the request line of logger `http`.

    With the configuration `configure` installs (the ECS formatter on one stderr handler)
    the line is put together from cached JSON pieces: the bytes `EcsFormatter` would write,
    without a LogRecord or a json.dumps per request (those were a third of a small answer's
    time). Lines are buffered as nginx's `access_log … buffer= flush=` does: written with one
    `write` and `flush` under the handler's lock when the buffer holds `buffer_bytes`, or
    when the oldest line has waited `flush_interval` seconds (one timer per buffer, not per
    line), and always on `flush()` (lifespan shutdown, exit). `flush_interval` 0 writes the
    lines of one event-loop turn at the end of that turn. Any other set-up (the dev format,
    a test's capture handler, filters) goes through `logging` as any other record.
    """

    BUFFER_BYTES = 64 << 10  # as nginx's access_log buffer=64k

    def __init__(self, flush_interval: float = 1.0, buffer_bytes: int = BUFFER_BYTES) -> None:
        self.logger = logging.getLogger(REQUEST_LOGGER)
        self.flush_interval = flush_interval
        self.buffer_bytes = buffer_bytes
        self._checked: logging.Handler | None = None
        self._fast: logging.StreamHandler | None = None  # type: ignore[type-arg]
        self._pending: list[str] = []
        self._pending_bytes = 0
        self._pending_to: logging.StreamHandler | None = None  # type: ignore[type-arg]
        self._timer: asyncio.TimerHandle | asyncio.Handle | None = None
        atexit.register(self.flush)

    def write(self, scope: Scope, status: int, written: int, started_ns: int) -> None:
        """Log one request; `started_ns` is its `time.perf_counter_ns()` at arrival."""
        logger = self.logger
        if not logger.isEnabledFor(logging.INFO):
            return
        duration = time.perf_counter_ns() - started_ns
        handler = self._ecs_handler()
        if handler is None:
            message, fields = request_fields(scope, status, written)
            fields["event.duration"] = duration
            logger.info(message, extra={"ecs": fields})
            return
        formatter = handler.formatter
        assert isinstance(formatter, EcsFormatter)
        line = ecs_request_line(scope, status, written, duration, formatter.tail, _now())
        if handler is not self._pending_to:
            self.flush()
            self._pending_to = handler
        pending = self._pending
        pending.append(line)
        self._pending_bytes += len(line)
        if self._pending_bytes >= self.buffer_bytes:
            self.flush()
        elif len(pending) == 1:
            self._schedule_flush()

    def flush(self) -> None:
        """Write the lines not yet written."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        handler, pending = self._pending_to, self._pending
        if handler is None or not pending:
            return
        text = "".join(pending)
        pending.clear()
        self._pending_bytes = 0
        handler.acquire()
        try:
            handler.stream.write(text)
            handler.flush()
        except Exception:  # as StreamHandler.emit: report, never fail a request
            handler.handleError(logging.makeLogRecord({"msg": text}))
        finally:
            handler.release()

    def _schedule_flush(self) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # not in an event loop: nothing to wait for
            self.flush()
            return
        if self.flush_interval > 0:
            self._timer = loop.call_later(self.flush_interval, self.flush)
        else:
            self._timer = loop.call_soon(self.flush)

    def _ecs_handler(self) -> logging.StreamHandler | None:  # type: ignore[type-arg]
        root = logging.root
        handlers = root.handlers
        logger = self.logger
        if logger.handlers or not logger.propagate or len(handlers) != 1:
            return None
        handler = handlers[0]
        if handler is not self._checked:
            self._checked = handler
            plain = (
                type(handler) is logging.StreamHandler
                and type(handler.formatter) is EcsFormatter
                and not (handler.filters or root.filters or logger.filters)
                and handler.level <= logging.INFO
            )
            self._fast = handler if plain else None  # type: ignore[assignment]
        return self._fast


def ecs_request_line(
    scope: Scope, status: int, written: int, duration: int, tail: str, timestamp: str
) -> str:
    """The request's ECS line, newline included, as EcsFormatter formats request_fields'
    record (same keys, order and escaping); `tail` is the formatter's service fields.

    Everything but the timestamp, status, size and duration depends on the request's
    method, path, query, protocol, client address and three headers, each cut to its
    LOGGED_MAX: the text of a small request is put together once and kept (PIECES_BUDGET
    bytes in all); that of a large one (long headers, a long path) is not kept."""
    host = referer = agent = b""
    for name, value in scope["headers"]:
        if name == b"host":
            host = value
        elif name == b"referer":
            referer = value
        elif name == b"user-agent":
            agent = value
    client = scope.get("client") or ("", 0)
    key = (
        scope.get("method", ""),
        scope.get("path", ""),
        scope.get("query_string", b""),
        scope.get("http_version", "1.1"),
        client[0],
        host,
        referer,
        agent,
    )
    kept = _PEEK_PIECES(key)
    pieces = _new_pieces(key) if kept is None else kept[0]
    after_timestamp, after_written = pieces
    return (
        f'{{"log.level": "info", "@timestamp": "{timestamp}{after_timestamp}{status}'
        f', "http.response.body.bytes": {written}{after_written}{duration}{tail}'
    )


# The most of each outside value a request line shows; what is cut ends in CUT_MARK.
LOGGED_MAX = {
    "url.path": 2048,
    "url.query": 2048,
    "url.domain": 256,
    "http.request.referer": 1024,
    "user_agent.original": 512,
}
CUT_MARK = "..."
KEEP_MAX = 1024  # bytes of method, path, query, client and headers: a larger line is not kept
PIECES_BUDGET = 4 << 20


def _new_pieces(key: tuple) -> tuple[str, str]:  # type: ignore[type-arg]
    """A request's pieces, each outside value cut to its LOGGED_MAX; kept when the request
    is small (its uncut key is what later requests are looked up by)."""
    method, path, query, version, client, host, referer, agent = key
    cut = (
        method,
        _cut(path, LOGGED_MAX["url.path"]),
        _cut(query, LOGGED_MAX["url.query"]),
        version,
        client,
        _cut(host, LOGGED_MAX["url.domain"]),
        _cut(referer, LOGGED_MAX["http.request.referer"]),
        _cut(agent, LOGGED_MAX["user_agent.original"]),
    )
    if _key_size(key) > KEEP_MAX:
        return _line_pieces(*cut, keep=False)
    pieces = _line_pieces(*cut)
    _LINE_PIECES.put(key, pieces)
    return pieces


def _cut(value: AnyStr, limit: int) -> AnyStr:
    if len(value) <= limit:
        return value
    mark = CUT_MARK if isinstance(value, str) else CUT_MARK.encode()
    return value[:limit] + mark


def _key_size(key: tuple[object, ...]) -> int:
    return sum(len(part) if isinstance(part, str | bytes) else 8 for part in key)


def _pieces_size(key: tuple[object, ...], pieces: tuple[str, str]) -> int:
    return 256 + _key_size(key) + len(pieces[0]) + len(pieces[1])


_LINE_PIECES: BoundedCache[tuple[object, ...], tuple[str, str]] = BoundedCache(
    PIECES_BUDGET, _pieces_size
)
_PEEK_PIECES = _LINE_PIECES.peek


def _line_pieces(
    method: str,
    path: str,
    query: bytes,
    version: object,
    client: object,
    host: bytes,
    referer: bytes,
    agent: bytes,
    *,
    keep: bool = True,
) -> tuple[str, str]:
    """The text between the timestamp and the status, and between the size and the duration.
    `keep=False`: a large request's, put together without filling the small caches."""
    source, source_tail = _source_pieces(str(client))
    domain, port = (_host_pieces if keep else _host_pieces.__wrapped__)(host)
    target = _target_pieces if keep else _target_pieces.__wrapped__
    opening, middle = target(method, path, str(version))
    field = _field_piece if keep else _field_piece.__wrapped__
    after_timestamp = f'{opening}{source}{middle}{domain}, "http.response.code": '
    after_written = "".join(
        (
            source_tail,
            field("http.request.referer", referer) if referer else "",
            field("user_agent.original", agent) if agent else "",
            field("url.query", query) if query else "",
            port,
            ', "event.duration": ',
        )
    )
    return after_timestamp, after_written


@functools.lru_cache(maxsize=1024)
def _target_pieces(method: str, path: str, version: str) -> tuple[str, str]:
    proto = "HTTP/2.0" if version == "2" else f"HTTP/{version}"
    message = _json(f"{method} {path} {proto}")
    opening = f'", "log.logger": "{REQUEST_LOGGER}", "message": {message}, "source.address": '
    middle = f', "http.request.method": {_json(method)}, "url.path": {_json(path)}, "url.domain": '
    return opening, middle


@functools.lru_cache(maxsize=1024)
def _source_pieces(source: str) -> tuple[str, str]:
    text = _json(source)
    return text, f', "{"source.ip" if _is_ip(source) else "source.domain"}": {text}'


@functools.lru_cache(maxsize=1024)
def _host_pieces(host: bytes) -> tuple[str, str]:
    domain, port = _split_host(host.decode("latin-1"))
    return _json(domain), (f', "url.port": {int(port)}' if port.isdigit() and int(port) else "")


@functools.lru_cache(maxsize=1024)
def _field_piece(key: str, value: bytes) -> str:
    return f', "{key}": {_json(value.decode("latin-1"))}'


# What json.dumps leaves raw with ensure_ascii=False and a terminal would obey or reorder:
# DEL, the C1 controls (a header's bytes 0x80-0x9f decode to them: \x9b is CSI) and the
# bidirectional overrides and isolates (as errors.printable). JSON's \u escapes keep the
# value; only string contents can hold them.
_JSON_UNSAFE = re.compile("[\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def _json(value: object) -> str:
    text = json.dumps(value, ensure_ascii=False, default=str)
    return _JSON_UNSAFE.sub(_json_escape, text)


def _json_escape(match: re.Match[str]) -> str:
    return f"\\u{ord(match.group()):04x}"


_second: list[int | str] = [-1, ""]  # the last second formatted, its text up to the fraction
_clock: list[int | str] = [-1, ""]  # the last millisecond formatted, and its text


def _now() -> str:
    """`_timestamp(time.time())`: the date and time formatted once per second, the text
    once per millisecond (requests finishing in the same millisecond share it)."""
    millisecond = int(time.time() * 1000)
    if millisecond != _clock[0]:
        second, fraction = divmod(millisecond, 1000)
        if second != _second[0]:
            _second[0], _second[1] = second, _timestamp(second)[:-4]
        _clock[0], _clock[1] = millisecond, f"{_second[1]}{fraction:03d}Z"
    return _clock[1]  # type: ignore[return-value]


def request_fields(scope: Scope, status: int, written: int) -> tuple[str, dict[str, Any]]:
    """The request log message and its fields, in Go's order (internal/util/logging.go)."""
    headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
    host_header = _cut(headers.get("host", ""), LOGGED_MAX["url.domain"])
    domain, port = _split_host(host_header)
    client = scope.get("client") or ("", 0)
    source = str(client[0])
    path = _cut(scope.get("path", ""), LOGGED_MAX["url.path"])
    fields: dict[str, Any] = {
        "source.address": source,
        "http.request.method": scope.get("method", ""),
        "url.path": path,
        "url.domain": domain,
        "http.response.code": status,
        "http.response.body.bytes": written,
    }
    fields["source.ip" if _is_ip(source) else "source.domain"] = source
    if referer := headers.get("referer"):
        fields["http.request.referer"] = _cut(referer, LOGGED_MAX["http.request.referer"])
    if agent := headers.get("user-agent"):
        fields["user_agent.original"] = _cut(agent, LOGGED_MAX["user_agent.original"])
    if query := scope.get("query_string", b""):
        fields["url.query"] = _cut(query.decode("latin-1"), LOGGED_MAX["url.query"])
    if port.isdigit() and int(port) != 0:
        fields["url.port"] = int(port)
    proto = "HTTP/" + str(scope.get("http_version", "1.1"))
    if proto == "HTTP/2":
        proto = "HTTP/2.0"
    return f"{scope.get('method', '')} {path} {proto}", fields


def _split_host(host: str) -> tuple[str, str]:
    if host.startswith("["):
        end = host.find("]")
        return host[: end + 1], host[end + 2 :] if host[end + 1 : end + 2] == ":" else ""
    name, sep, port = host.rpartition(":")
    return (name, port) if sep and ":" not in name else (host, "")


@functools.lru_cache(maxsize=1024)  # a registry has few clients; parsing costs per request
def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True
