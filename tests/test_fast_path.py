"""The fast path answers a repeated request exactly as the registry did the first time:
same status, header lines and body, one request line and the same metrics; and it steps
aside for conditional and Range requests and for a file changed on disk."""

from __future__ import annotations

import json
import os
import time

import httpx
import pytest

from fleetgap.serving.fastpath import LARGE_BODY

from builders import package_files, write_dir_package, write_zip_package
from serving import Server, fleetgap_serve, free_port

URLS = [
    "/",
    "/health",
    "/favicon.ico",
    "/search?kibana.version=9.1.0",
    "/search?package=alpha&all=true",
    "/search?kibana.version=foo",  # a 400 is known too
    "/categories",
    "/package/alpha/1.0.0/",
    "/epr/alpha/alpha-1.0.0.zip",
    "/package/beta/2.0.0/docs/README.md",
]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):
    data = tmp_path_factory.mktemp("data")
    write_zip_package(data / "packages", "alpha", "1.0.0")
    paths = tmp_path_factory.mktemp("dirs")
    write_dir_package(paths, "beta", "2.0.0")
    (data / "config.yml").write_text(f"package_paths:\n- {paths}\n")
    metrics = f"127.0.0.1:{free_port()}"
    flags = ["--data", str(data), "-require-package-signatures=false"]
    flags += ["-config", str(data / "config.yml"), "-metrics-address", metrics]
    with fleetgap_serve(*flags, cwd=data, log_dir=data) as running:
        yield running, f"http://{metrics}/metrics", paths


def lines_and_body(response: httpx.Response) -> tuple[int, list[tuple[str, str]], bytes]:
    headers = [(k, v) for k, v in response.headers.multi_items() if k != "date"]
    return response.status_code, headers, response.content


def request_lines(server: Server, path: str) -> list[dict]:
    records = [json.loads(line) for line in server.log_text().splitlines() if line.startswith("{")]
    return [r for r in records if r["log.logger"] == "http" and r.get("url.path") == path]


@pytest.mark.parametrize("url", URLS)
@pytest.mark.parametrize("method", ["GET", "HEAD"])
def test_a_repeated_request_gets_the_same_answer(server, url: str, method: str) -> None:
    running, _, _ = server
    with httpx.Client() as client:
        answers = [lines_and_body(client.request(method, running.url + url)) for _ in range(3)]
    assert answers[0] == answers[1] == answers[2]


def test_every_repeat_is_logged_and_counted(server) -> None:
    running, metrics_url, _ = server
    url = "/package/alpha/1.0.0/?x=1"
    for _ in range(3):
        assert httpx.get(running.url + url).status_code == 200
    lines = request_lines(running, "/package/alpha/1.0.0/")
    lines = [line for line in lines if line.get("url.query") == "x=1"]
    assert len(lines) == 3
    first, *rest = lines
    for line in rest:
        for key in ("@timestamp", "event.duration"):
            line.pop(key), first.pop(key, None)
        assert line == first
    text = httpx.get(metrics_url).text
    route = 'path="/package/{packageName:[a-z0-9_]+}/{packageVersion}/"'
    counted = [
        line
        for line in text.splitlines()
        if line.startswith("epr_http_requests_total{") and route in line and 'method="get"' in line
    ]
    assert counted and float(counted[0].rsplit(" ", 1)[1]) >= 3


def test_conditions_and_ranges_still_get_go_s_answers(server) -> None:
    running, _, _ = server
    url = running.url + "/epr/alpha/alpha-1.0.0.zip"
    full = httpx.get(url)
    httpx.get(url)  # now known
    modified = full.headers["last-modified"]
    assert httpx.get(url, headers={"If-Modified-Since": modified}).status_code == 304
    part = httpx.get(url, headers={"Range": "bytes=0-9"})
    assert (part.status_code, part.content) == (206, full.content[:10])
    stale = httpx.get(url, headers={"Range": "bytes=0-9", "If-Range": '"other"'})
    assert (stale.status_code, stale.content) == (200, full.content)


def test_a_file_changed_on_disk_is_served_afresh(server) -> None:
    running, _, paths = server
    url = running.url + "/package/beta/2.0.0/docs/README.md"
    assert httpx.get(url).text == "# beta\n"
    assert httpx.get(url).text == "# beta\n"
    readme = paths / "beta" / "2.0.0" / "docs" / "README.md"
    readme.write_text("# beta, edited\n")
    later = time.time() + 5
    os.utime(readme, (later, later))
    assert httpx.get(url).text == "# beta, edited\n"


def test_under_uvicorn_a_known_file_is_streamed_whole(tmp_path) -> None:
    """uvicorn has no `http.response.pathsend`: the fast path sends the file in chunks."""
    data = tmp_path / "data"
    write_zip_package(data / "packages", "alpha", "1.0.0")
    zip_bytes = (data / "packages" / "alpha-1.0.0.zip").read_bytes()
    flags = ["--data", str(data), "-require-package-signatures=false", "--server", "uvicorn"]
    with fleetgap_serve(*flags, cwd=data, log_dir=tmp_path) as running, httpx.Client() as client:
        url = running.url + "/epr/alpha/alpha-1.0.0.zip"
        answers = [lines_and_body(client.get(url)) for _ in range(3)]
        assert answers[0] == answers[1] == answers[2]
        assert answers[2][0] == 200 and answers[2][2] == zip_bytes
        time.sleep(0.2)
        lines = request_lines(running, "/epr/alpha/alpha-1.0.0.zip")
    assert [line["http.response.body.bytes"] for line in lines] == [len(zip_bytes)] * 3


def test_a_known_answer_over_a_mebibyte_is_sent_whole_in_pieces(tmp_path) -> None:
    """Large known bodies go to the server in pieces (fastpath.BODY_PIECE); the client still
    gets one answer, byte for byte the registry's first."""
    data = tmp_path / "data"
    description = "word " * 400_000  # a 2 MB description makes a 2 MB package document
    files = package_files("big", "1.0.0", {"description": description})
    write_zip_package(data / "packages", "big", "1.0.0", files)
    flags = ["--data", str(data), "-require-package-signatures=false"]
    with fleetgap_serve(*flags, cwd=data, log_dir=tmp_path) as running, httpx.Client() as client:
        for url in ("/package/big/1.0.0/", "/search?all=true"):
            answers = [lines_and_body(client.get(running.url + url)) for _ in range(3)]
            assert answers[0] == answers[1] == answers[2]
            status, headers, body = answers[2]
            assert status == 200 and len(body) > LARGE_BODY
            assert dict(headers)["content-length"] == str(len(body))
            document = json.loads(body)
            found = document if url.startswith("/package") else document[0]
            assert found["description"] == description.strip()
