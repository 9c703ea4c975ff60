"""Proxy mode against a hostile upstream on 127.0.0.1: a body is read up to a byte cap and
within a deadline, and only a valid package name goes into an upstream URL."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route
from test_proxy import proxied_registry as proxied

from fleetgap.registry.proxy import MAX_BODY

from serving import serve_asgi

REMOTE = {"name": "remote", "version": "2.0.0", "title": "Remote", "type": "integration"}


class Hostile:
    """An upstream registry that records every request and how many body bytes it sent."""

    def __init__(self) -> None:
        self.requests: list[str] = []
        self.sent = 0

    def app(self) -> Starlette:
        async def search(request: Request) -> Response:
            self.requests.append(request.url.path)
            if request.query_params.get("kind") == "trickle":
                return StreamingResponse(self._trickle(request), media_type="application/json")
            return StreamingResponse(self._endless(request), media_type="application/json")

        async def package(request: Request) -> Response:
            self.requests.append(request.scope["raw_path"].decode("latin-1"))
            if request.path_params["name"] == "remote":
                return JSONResponse({**REMOTE, "format_version": "3.0.0"})
            return Response("package revision not found\n", 404)

        async def anything(request: Request) -> Response:
            self.requests.append(request.scope["raw_path"].decode("latin-1"))
            return Response("404 page not found\n", 404)

        routes = [Route("/search", search), Route("/package/{name}/{version}/", package)]
        return Starlette(routes=[*routes, Route("/{path:path}", anything)])

    async def _endless(self, request: Request):
        chunk = b"[" + b" " * (1 << 16)
        # chunked, no Content-Length: only the reader can stop it (counted until it hangs up)
        while not await request.is_disconnected():
            self.sent += len(chunk)
            yield chunk
            chunk = b" " * (1 << 16)

    async def _trickle(self, request: Request):
        while not await request.is_disconnected():  # a byte every half second: no read
            yield b" "  # ever times out
            await asyncio.sleep(0.5)


@pytest.fixture(scope="module")
def hostile_registry(tmp_path_factory: pytest.TempPathFactory):
    hostile = Hostile()
    with (
        serve_asgi(hostile.app()) as upstream,
        proxied(tmp_path_factory.mktemp("hostile"), upstream) as server,
    ):
        yield server, hostile, upstream


def test_an_endless_upstream_body_is_cut_at_the_cap(hostile_registry) -> None:
    server, hostile, _ = hostile_registry
    hostile.sent = 0
    response = httpx.get(server.url + "/search?kind=endless", timeout=120)
    assert (response.status_code, response.text) == (500, "internal server error\n")
    assert hostile.requests.count("/search") == 1  # too large is not retried
    # what the upstream sent before it saw the hang-up: the cap, plus what sat in buffers
    # (an unbounded reader would still be reading)
    assert MAX_BODY < hostile.sent < 2 * MAX_BODY
    assert f"larger than {MAX_BODY} bytes" in server.log_text()
    assert httpx.get(server.url + "/package/local/1.0.0/").json()["name"] == "local"


def test_a_trickling_upstream_meets_the_overall_deadline(hostile_registry) -> None:
    server, hostile, _ = hostile_registry
    before = hostile.requests.count("/search")
    response = httpx.get(server.url + "/search?kind=trickle", timeout=120)
    assert (response.status_code, response.text) == (500, "internal server error\n")
    assert hostile.requests.count("/search") == before + 1  # a trickle is not retried
    assert "no whole answer within 10 s" in server.log_text()


@pytest.mark.parametrize(
    "name", ["a%3Fb", "remote%3Fx=1", "a%23b", "a%0D%0AX-Injected:%201", "Remote"]
)
def test_an_invalid_package_name_never_reaches_the_upstream(hostile_registry, name) -> None:
    server, hostile, _ = hostile_registry
    before = list(hostile.requests)
    response = httpx.get(server.url + f"/package/{name}/2.0.0/docs/README.md", timeout=60)
    assert (response.status_code, response.text) == (404, "package revision not found\n")
    assert hostile.requests == before
    assert "Traceback" not in server.log_text()


def test_a_file_path_is_escaped_in_the_redirect_to_the_upstream(hostile_registry) -> None:
    server, _, upstream = hostile_registry
    response = httpx.get(server.url + "/package/remote/2.0.0/docs/a%3Fb%0D%0Ac.md", timeout=60)
    assert response.status_code == 301
    assert response.headers["location"] == upstream + "/package/remote/2.0.0/docs/a%3Fb%0D%0Ac.md"
    known = httpx.get(server.url + "/package/remote/2.0.0/", timeout=60)
    assert json.loads(known.text)["format_version"] == "3.0.0"


def test_the_redirect_to_the_upstream_never_carries_the_proxy_to_credentials(
    tmp_path: Path,
) -> None:
    hostile = Hostile()
    with serve_asgi(hostile.app()) as upstream:
        with_password = upstream.replace("http://", "http://fleet:s3cret@")
        with proxied(tmp_path, with_password) as server:
            path = "/package/remote/2.0.0/docs/README.md"
            response = httpx.get(server.url + path, timeout=60)
            assert response.status_code == 301
            assert response.headers["location"] == upstream + path
            assert "s3cret" not in server.log_text()
