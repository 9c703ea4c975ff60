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


def test_requests_finished_in_one_loop_turn_share_one_write() -> None:
    log = RequestLog()

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


def test_a_turn_with_more_lines_than_the_limit_writes_them_in_parts() -> None:
    log = RequestLog()
    count = RequestLog.MAX_PENDING * 2 + 3

    async def turn() -> None:
        for _ in range(count):
            log.write(SCOPES[2], 200, 0, time.perf_counter_ns())
        await asyncio.sleep(0)

    with ecs_root_handler() as ecs_stream:
        asyncio.run(turn())
    assert len(ecs_stream.writes) == 3
    assert sum(text.count("\n") for text in ecs_stream.writes) == count


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
