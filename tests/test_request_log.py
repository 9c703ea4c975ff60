"""The request line written from cached pieces is the line EcsFormatter writes."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Iterator

import pytest

from fleetgap.serving.logs import (
    REQUEST_LOGGER,
    EcsFormatter,
    RequestLog,
    _now,
    _timestamp,
    ecs_request_line,
    request_fields,
)

SCOPES = [
    {
        "method": "GET",
        "path": "/search",
        "query_string": b"kibana.version=9.1.0&package=a%22b",
        "http_version": "1.1",
        "client": ("127.0.0.1", 5555),
        "headers": [
            (b"host", b"registry.internal:8080"),
            (b"user-agent", b'Kibana "9.1.0" \xe9'),
            (b"referer", b"https://kibana/app"),
        ],
    },
    {
        "method": "HEAD",
        "path": '/package/a/1.0.0/\u00e9 "x"',
        "query_string": b"",
        "http_version": "2",
        "client": ("agent-host", 1),
        "headers": [(b"host", b"[::1]:0")],
    },
    {"method": "GET", "path": "/", "query_string": b"", "http_version": "1.0", "headers": []},
]


@pytest.mark.parametrize("scope", SCOPES)
@pytest.mark.parametrize("environment", ["", "production"])
def test_the_fast_line_is_the_formatter_s_line(
    scope: dict, environment: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ELASTIC_APM_ENVIRONMENT", environment)
    formatter = EcsFormatter("package-registry")
    message, fields = request_fields(scope, 404, 1234)
    fields["event.duration"] = 98765
    record = logging.LogRecord(REQUEST_LOGGER, logging.INFO, "x.py", 1, message, (), None)
    record.ecs = fields  # type: ignore[attr-defined]
    expected = formatter.format(record) + "\n"
    timestamp = json.loads(expected)["@timestamp"]
    line = ecs_request_line(scope, 404, 1234, 98765, formatter.tail, timestamp)
    assert line == expected


class CountingStream:
    """A text stream that keeps each `write` apart."""

    def __init__(self) -> None:
        self.writes: list[str] = []

    def write(self, text: str) -> int:
        self.writes.append(text)
        return len(text)

    def flush(self) -> None:
        pass


@contextlib.contextmanager
def ecs_root_handler() -> Iterator[CountingStream]:
    """The root logger as `logs.configure` leaves it: one ECS handler, here on a test stream.

    Entered in the test itself: pytest adds its capture handlers to the root logger after
    fixtures are set up."""
    stream = CountingStream()
    handler = logging.StreamHandler(stream)  # type: ignore[arg-type]
    handler.setFormatter(EcsFormatter())
    root = logging.getLogger()
    saved, level = root.handlers[:], root.level
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)
    try:
        yield stream
    finally:
        root.handlers[:] = saved
        root.setLevel(level)


def test_with_interval_0_requests_finished_in_one_loop_turn_share_one_write() -> None:
    log = RequestLog(flush_interval=0)

    async def turn() -> None:
        for n in range(10):
            log.write(dict(SCOPES[2], path=f"/{n}"), 200, n, time.perf_counter_ns())
        assert ecs_stream.writes == []  # still in the turn that finished them
        await asyncio.sleep(0)  # the loop's next turn: written before it waits for I/O

    with ecs_root_handler() as ecs_stream:
        asyncio.run(turn())
    assert len(ecs_stream.writes) == 1
    lines = ecs_stream.writes[0].splitlines()
    assert [json.loads(line)["url.path"] for line in lines] == [f"/{n}" for n in range(10)]


def test_a_full_buffer_is_written_at_once_and_no_write_exceeds_it_by_more_than_a_line() -> None:
    log = RequestLog(flush_interval=30, buffer_bytes=4096)
    count = 100
    written_before_the_timer: list[int] = []

    async def turn() -> None:
        for _ in range(count):
            log.write(SCOPES[2], 200, 0, time.perf_counter_ns())
        written_before_the_timer.append(len(ecs_stream.writes))
        log.flush()  # as on shutdown

    with ecs_root_handler() as ecs_stream:
        asyncio.run(turn())
    line = len(ecs_stream.writes[0].splitlines()[0]) + 1
    assert written_before_the_timer[0] == count * line // 4096
    assert all(len(text) < 4096 + line for text in ecs_stream.writes)
    assert sum(text.count("\n") for text in ecs_stream.writes) == count


def test_a_line_waits_for_the_interval_not_for_more_traffic() -> None:
    log = RequestLog(flush_interval=0.2)
    seen: list[int] = []

    async def quiet_server() -> None:
        log.write(SCOPES[2], 200, 0, time.perf_counter_ns())
        await asyncio.sleep(0)
        seen.append(len(ecs_stream.writes))  # not at the end of the turn
        for _ in range(100):  # then nothing more happens; at most 10 s
            await asyncio.sleep(0.1)
            if ecs_stream.writes:
                break
        seen.append(len(ecs_stream.writes))

    with ecs_root_handler() as ecs_stream:
        asyncio.run(quiet_server())
    assert seen == [0, 1]


def test_lifespan_shutdown_writes_the_lines_still_buffered() -> None:
    from fleetgap.serving.logs import RequestLogMiddleware

    log = RequestLog(flush_interval=30)

    async def app(scope, receive, send):  # type: ignore[no-untyped-def]
        message = await receive()
        assert message["type"] == "lifespan.shutdown"
        await send({"type": "lifespan.shutdown.complete"})

    async def shutdown() -> None:
        log.write(SCOPES[2], 200, 0, time.perf_counter_ns())
        sent: list[str] = []

        async def receive():  # type: ignore[no-untyped-def]
            return {"type": "lifespan.shutdown"}

        async def send(message):  # type: ignore[no-untyped-def]
            sent.append(len(ecs_stream.writes))

        await RequestLogMiddleware(app, log)({"type": "lifespan"}, receive, send)
        assert sent == [1]  # written before the server hears the app is done

    with ecs_root_handler() as ecs_stream:
        asyncio.run(shutdown())


def test_outside_an_event_loop_the_line_is_written_at_once() -> None:
    with ecs_root_handler() as ecs_stream:
        RequestLog().write(SCOPES[0], 200, 5, time.perf_counter_ns())
    assert len(ecs_stream.writes) == 1
    assert json.loads(ecs_stream.writes[0])["http.response.body.bytes"] == 5


@pytest.mark.parametrize("scope", SCOPES)
def test_a_repeated_request_s_line_still_carries_its_own_status_size_and_duration(
    scope: dict,
) -> None:
    formatter = EcsFormatter("package-registry")
    for status, written, duration in ((200, 10, 5), (404, 0, 123456), (206, 7, 1)):
        message, fields = request_fields(scope, status, written)
        fields["event.duration"] = duration
        record = logging.LogRecord(REQUEST_LOGGER, logging.INFO, "x.py", 1, message, (), None)
        record.ecs = fields  # type: ignore[attr-defined]
        expected = formatter.format(record) + "\n"
        timestamp = json.loads(expected)["@timestamp"]
        assert ecs_request_line(scope, status, written, duration, formatter.tail, timestamp) == (
            expected
        )


def test_the_line_s_timestamp_is_the_formatter_s_for_the_current_millisecond() -> None:
    for _ in range(2000):
        before = _timestamp(time.time())
        now = _now()
        after = _timestamp(time.time())
        assert before <= now <= after
        assert len(now) == len(before) and now.endswith("Z")


def test_c1_controls_and_bidi_overrides_from_a_request_are_escaped_in_both_log_types() -> None:
    """R2: header bytes 0x80-0x9f decode (latin-1) to C1 controls (\\x9b is CSI) and a path
    may hold U+202E; json.dumps with ensure_ascii=False left them raw for the terminal."""
    from fleetgap.serving.logs import ConsoleFormatter

    scope = {
        "method": "GET",
        "path": "/package/\u202eabc/1.0.0/",
        "query_string": b"",
        "http_version": "1.1",
        "client": ("127.0.0.1", 5555),
        "headers": [(b"host", b"a"), (b"referer", b"\x9b2J\x9d0;t\x9c"), (b"user-agent", b"u\x7f")],
    }
    message, fields = request_fields(scope, 200, 1)
    fields["event.duration"] = 1
    record = logging.LogRecord(REQUEST_LOGGER, logging.INFO, "x.py", 1, message, (), None)
    record.ecs = fields  # type: ignore[attr-defined]
    ecs = EcsFormatter().format(record)
    fast = ecs_request_line(scope, 200, 1, 1, EcsFormatter().tail, json.loads(ecs)["@timestamp"])
    for line in (ecs, fast, ConsoleFormatter().format(record)):
        assert not any("\x7f" <= c <= "\x9f" or c == "\u202e" for c in line), line
    document = json.loads(fast)
    assert document["http.request.referer"] == "\x9b2J\x9d0;t\x9c"
    assert document["url.path"] == "/package/\u202eabc/1.0.0/"
    assert fast == ecs + "\n"
