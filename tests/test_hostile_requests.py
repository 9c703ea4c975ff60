"""Requests a careless or hostile client sends: bytes that are not UTF-8 and broken
percent-escapes in every part of the URL. Each gets Go's answer, and none a traceback."""

from __future__ import annotations

import http.client
import json
from urllib.parse import urlsplit

import pytest

from builders import write_zip_package
from serving import Server, fleetgap_serve

BAD_VERSION = b"invalid Kibana version '\xff\xfe': invalid semantic version\n"

# (request target, the status Go's registry / Fleet Server answers)
CASES: list[tuple[str, int]] = [
    ("/search?kibana.version=%ff%fe", 400),
    ("/categories?kibana.version=%ff%fe", 400),
    ("/categories?include_policy_templates=%ff", 400),
    ("/search?agent.version=%ff", 400),
    ("/search?spec.min=%ff.1", 400),
    ("/search?spec.max=%ff", 400),
    ("/search?all=%ff", 400),
    ("/search?prerelease=%c3%28", 400),
    ("/search?experimental=%ff", 400),
    ("/search?discovery=%ff", 400),
    ("/search?discovery=%ff:x", 400),
    ("/search?package=%ff", 200),
    ("/search?category=%ff&type=%fe", 200),
    ("/search?%ff=1", 200),  # unknown parameters are allowed by default
    ("/search?kibana.version=%", 200),  # a bad escape drops the pair (url.ParseQuery)
    ("/search?kibana.version=%f", 200),
    ("/package/a/%ff/", 400),
    ("/package/alpha/1.0.0/%ff", 404),
    ("/package/%ff%fe/1.0.0/x", 404),
    ("/package/alpha/1.0.0/%", 404),
    ("/epr/alpha/alpha-%ff.zip", 400),
    ("/epr/%ff/%ff-1.0.0.zip", 404),
    ("/epr/alpha/alpha-1.0.0.zip.sig%ff", 404),
    ("/%ff", 404),
    ("/search%ff", 404),
    ("/downloads/%ff", 404),
    ("/downloads/beats/%c3%28", 404),
    ("/downloads/%00", 404),
    ("/GPG-KEY-%ff", 404),
    # Fleet Server: integer binding fails before the TLS check (spec: fleet-server-pgp §2)
    ("/api/agents/upgrades/%ff.1.1/pgp-public-key", 500),
    ("/api/agents/upgrades/1.1.%fe/pgp-public-key", 500),
]


@pytest.fixture(scope="module", params=["granian", "uvicorn"])
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    data = tmp_path_factory.mktemp("data")
    write_zip_package(data / "packages", "alpha", "1.0.0")
    (data / "downloads" / "beats").mkdir(parents=True)
    (data / "keys").mkdir()
    flags = ["--data", str(data), "-require-package-signatures=false"]
    flags += ["--server", request.param]
    with fleetgap_serve(*flags, cwd=data, log_dir=data) as running:
        yield running


def raw_get(server: Server, target: str) -> tuple[int, dict[str, str], bytes]:
    """GET `target` exactly as written (no client re-encoding)."""
    address = urlsplit(server.url)
    connection = http.client.HTTPConnection(address.hostname or "", address.port, timeout=10)
    try:
        connection.request("GET", target)
        response = connection.getresponse()
        headers = {k.lower(): v for k, v in response.getheaders()}
        return response.status, headers, response.read()
    finally:
        connection.close()


def test_a_kibana_version_that_is_not_utf8_is_a_400_like_any_invalid_version(
    server: Server,
) -> None:
    status, headers, body = raw_get(server, "/search?kibana.version=%ff%fe")
    _, foo_headers, foo_body = raw_get(server, "/search?kibana.version=foo")
    assert (status, body) == (400, BAD_VERSION)
    assert foo_body == b"invalid Kibana version 'foo': invalid semantic version\n"
    # the same shape as any invalid version: the same header lines, but the length
    del headers["content-length"], headers["date"], foo_headers["content-length"]
    del foo_headers["date"]
    assert headers == foo_headers


@pytest.mark.parametrize(("target", "status"), CASES)
def test_bytes_that_are_not_utf8_get_go_s_status(server: Server, target: str, status: int) -> None:
    assert raw_get(server, target)[0] == status


def test_no_request_leaves_a_traceback_and_each_is_logged(server: Server) -> None:
    for target, _ in CASES:
        raw_get(server, target)
    text = server.log_text()
    assert "Traceback" not in text
    requests = [json.loads(line) for line in text.splitlines() if '"log.logger": "http"' in line]
    logged = {(r.get("url.path"), r["http.response.code"]) for r in requests}
    assert ("/search", 400) in logged
    assert all(code != 500 for path, code in logged if not path.startswith("/api/"))


def test_headers_that_are_not_utf8_are_logged_not_fatal(server: Server) -> None:
    address = urlsplit(server.url)
    connection = http.client.HTTPConnection(address.hostname or "", address.port, timeout=10)
    connection.putrequest("GET", "/search?package=alpha")
    connection.putheader("User-Agent", b"agent-\xff")
    connection.putheader("Referer", b"http://x/\xfe")
    connection.endheaders()
    assert connection.getresponse().status == 200
    connection.close()
    assert "Traceback" not in server.log_text()
