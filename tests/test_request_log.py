"""The request line written from cached pieces is the line EcsFormatter writes."""

from __future__ import annotations

import json
import logging

import pytest

from fleetgap.logs import REQUEST_LOGGER, EcsFormatter, ecs_request_line, request_fields

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
