"""Memory is bounded in bytes, not entries (issue 17, item 9): kept /search answers are
keyed by the parsed query and, like the fast path's answers and the request-line pieces,
held within a byte budget; logged outside values are cut; oversized request heads are
refused by both servers.

The caches are measured on the app serving real requests on 127.0.0.1 (uvicorn in a
thread, so the test can read the objects the requests filled)."""

from __future__ import annotations

import contextlib
import io
import json
import logging
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from fleetgap.config import Settings
from fleetgap.packages.index import LoadOptions, load_index
from fleetgap.registry.app import RegistryApp
from fleetgap.registry.bounded import BoundedCache
from fleetgap.registry.handlers import _answer_size
from fleetgap.registry.holder import IndexHolder
from fleetgap.registry.known import KnownAnswers
from fleetgap.serving import logs
from fleetgap.serving.fastpath import FastPath

from builders import package_files, write_dir_package
from serving import fleetgap_serve, free_port, serve_asgi

PACKAGES = 60
DESCRIPTION = "A description long enough to make the answers weigh. " * 40  # ~2 KB


@pytest.fixture(scope="module")
def packages(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("packages")
    for number in range(PACKAGES):
        name = f"pkg{number:03d}"
        files = package_files(name, "1.0.0", {"description": repr(DESCRIPTION)})
        write_dir_package(base, name, "1.0.0", files)
    return base


@pytest.fixture
def registry(packages: Path):
    """(base URL, the registry app, the fast path's answers), served on 127.0.0.1."""
    settings = Settings(package_paths=(packages,), require_package_signatures=False)
    holder = IndexHolder(load_index(LoadOptions(paths=(packages,), require_signatures=False)))
    known = KnownAnswers(holder)
    app = RegistryApp(settings, holder, known)
    log = logs.RequestLog(flush_interval=0)  # lines are read right after their requests
    front = FastPath(logs.RequestLogMiddleware(app, log), known, log)
    with serve_asgi(front) as url:
        yield url, app, known


def held_bytes(app: RegistryApp, known: KnownAnswers) -> int:
    """The bytes of every distinct body the two caches hold (each object once)."""
    bodies = {id(a.body): len(a.body) for a in known._table.values()}
    bodies.update({id(b): len(b) for b in app.context.answers.values()})
    return sum(bodies.values())


def test_queries_that_parse_the_same_share_one_kept_answer(registry) -> None:
    url, app, known = registry
    with httpx.Client(base_url=url) as client:
        first = client.get("/search?all=true&kibana.version=9.1.0")
        body = first.content
        assert first.status_code == 200 and len(body) > PACKAGES * 2000
        for number in range(150):  # junk that the query does not read: build metadata
            response = client.get(f"/search?all=true&kibana.version=9.1.0%2Bjunk{number}")
            assert response.content == body
    assert len(app.context.answers) == 1
    assert held_bytes(app, known) == len(body)  # 150 answers recorded, one body held


def test_kept_answers_stay_within_their_byte_budgets(registry) -> None:
    url, app, known = registry
    budget = 1 << 20
    app.context.answers = BoundedCache(budget, _answer_size)
    known.budget = budget
    with httpx.Client(base_url=url) as client:
        bodies = {}
        for minor in range(40):  # distinct parsed queries, each a full answer (~120 KB)
            query = f"/search?all=true&kibana.version=9.{minor}.0"
            bodies[query] = client.get(query).content
            assert client.get(query).content == bodies[query]  # from the fast path
        total = sum(len(b) for b in bodies.values())
        assert total > 4 * budget
        assert app.context.answers.bytes <= budget
        assert known.bytes <= budget
        assert held_bytes(app, known) <= 2 * budget
        # what the fast path counts is what it holds
        own = sum(known._own_size(k, a) for k, a in known._table.items())
        distinct = {id(a.body): len(a.body) for a in known._table.values()}
        assert known.bytes == own + sum(distinct.values())
        # answers dropped from the caches are computed again, the same
        first = "/search?all=true&kibana.version=9.0.0"
        assert client.get(first).content == bodies[first]


def test_long_queries_count_against_the_budget(registry) -> None:
    url, app, _ = registry
    budget = 1 << 20
    app.context.answers = BoundedCache(budget, _answer_size)
    with httpx.Client(base_url=url) as client:
        for number in range(200):  # small answers ("[]") to 12 KB queries: 2.4 MB of keys
            name = f"{number:03d}" + "n" * 12_000
            assert client.get(f"/search?package={name}").content == b"[]"
    kept = app.context.answers._entries
    held = sum(len(query.package_name) for _, query in kept)
    assert 0 < held <= budget
    assert app.context.answers.bytes <= budget


@contextlib.contextmanager
def ecs_logging() -> Iterator[io.StringIO]:
    """The ECS request lines as `fleetgap serve` writes them (one ECS handler on the root
    logger, in place of pytest's while the test runs); yields the stream they go to."""
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logs.EcsFormatter())
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)
    logs._LINE_PIECES.clear()
    try:
        yield stream
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])


def request_lines(stream: io.StringIO, count: int) -> list[dict]:
    """The request lines, once `count` are written (a line follows its answer)."""
    deadline = time.monotonic() + 10
    while True:
        records = [json.loads(line) for line in stream.getvalue().splitlines()]
        lines = [r for r in records if r.get("log.logger") == "http"]
        if len(lines) >= count or time.monotonic() > deadline:
            return lines


def test_pieces_of_large_request_lines_are_not_kept(registry) -> None:
    url, _, _ = registry
    with ecs_logging() as stream, httpx.Client(base_url=url) as client:
        for number in range(60):
            agent = f"agent-{number}-" + "u" * 40_000
            referer = f"http://referer-{number}/" + "r" * 10_000
            client.get("/health?x", headers={"User-Agent": agent, "Referer": referer})
        small = client.get("/search?package=pkg001", headers={"User-Agent": "Kibana"})
        assert small.status_code == 200
        lines = request_lines(stream, 61)
    assert len(lines) == 61
    pieces = logs._LINE_PIECES
    assert len(pieces) == 1 and pieces.bytes < logs.KEEP_MAX * 8
    agent = lines[0]["user_agent.original"]
    assert agent == "agent-0-" + "u" * (logs.LOGGED_MAX["user_agent.original"] - 8) + "..."
    assert len(lines[0]["http.request.referer"]) == 1024 + 3


def test_logged_path_and_query_are_cut(registry) -> None:
    url, _, _ = registry
    with ecs_logging() as stream:
        httpx.get(url + "/" + "p" * 5000 + "?" + "q=" + "x" * 5000)
        (line,) = request_lines(stream, 1)
    assert line["url.path"] == "/" + "p" * 2047 + "..."
    assert line["url.query"] == "q=" + "x" * 2046 + "..."
    assert len(line["message"]) < 2100
    assert len(logs._LINE_PIECES) == 0


def _head_status(url: str, head_size: int, *, query: bool = False) -> bytes:
    host, port = url.removeprefix("http://").split(":")
    filler = b"a" * head_size
    target = b"/search?x=" + filler if query else b"/search"
    agent = b"" if query else b"User-Agent: " + filler + b"\r\n"
    head = b"GET " + target + b" HTTP/1.1\r\nHost: x\r\n" + agent + b"Connection: close\r\n\r\n"
    with socket.create_connection((host, int(port))) as client:
        with contextlib.suppress(OSError):  # a server may answer and close before the end
            client.sendall(head)
        try:
            return client.recv(64).split(b"\r\n")[0]
        except ConnectionResetError:
            return b"reset"


@pytest.mark.parametrize("server", ["granian", "uvicorn"])
def test_oversized_request_heads_are_refused(server: str, tmp_path: Path) -> None:
    with fleetgap_serve("--server", server, cwd=tmp_path, log_dir=tmp_path) as running:
        under = [_head_status(running.url, 60_000, query=q) for q in (False, True)]
        over = [
            _head_status(running.url, size, query=q)
            for size in (70_000, 600_000)
            for q in (False, True)
        ]
    assert under == [b"HTTP/1.1 200 OK"] * 2
    refusal = b"HTTP/1.1 431 Request Header Fields Too Large"
    assert all(status in (refusal, b"HTTP/1.1 400 Bad Request") for status in over), over


def test_made_up_methods_do_not_make_new_metric_series(tmp_path: Path) -> None:
    metrics = f"127.0.0.1:{free_port()}"
    with fleetgap_serve("-metrics-address", metrics, cwd=tmp_path, log_dir=tmp_path) as running:
        for number in range(30):
            httpx.request(f"JUNK{number}", running.url + "/search")
        text = httpx.get(f"http://{metrics}/metrics").text
    assert 'method="junk' not in text
    assert 'method="other",path="/search"} 30.0' in text
