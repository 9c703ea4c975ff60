"""Proxy mode against a real upstream registry on 127.0.0.1 (spec: epr-api §4.7)."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Route

from builders import write_dir_package
from serving import fleetgap_serve, free_port, serve_asgi

REMOTE = {"name": "remote", "version": "2.0.0", "title": "Remote", "type": "integration"}


def _upstream() -> Starlette:
    async def search(request):  # type: ignore[no-untyped-def]
        return JSONResponse([{**REMOTE, "description": "from upstream"}])

    async def package(request):  # type: ignore[no-untyped-def]
        if request.path_params["name"] == "remote":
            return JSONResponse({**REMOTE, "format_version": "3.0.0"})
        return PlainTextResponse("package revision not found\n", status_code=404)

    return Starlette(
        routes=[
            Route("/search", search),
            Route("/package/{name}/{version}/", package),
        ]
    )


@contextlib.contextmanager
def proxied_registry(tmp_path: Path, upstream: str):
    write_dir_package(tmp_path / "packages", "local", "1.0.0")
    config = tmp_path / "config.yml"
    config.write_text(f"package_paths:\n  - {tmp_path / 'packages'}\n")
    flags = ["-config", str(config), "-require-package-signatures=false"]
    flags += ["-feature-proxy-mode=true", "-proxy-to", upstream, "-proxy-allow-insecure"]
    with fleetgap_serve(*flags, log_dir=tmp_path) as server:
        yield server


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory):
    with (
        serve_asgi(_upstream()) as upstream,
        proxied_registry(tmp_path_factory.mktemp("proxy"), upstream) as server,
    ):
        yield server.url, upstream


def test_search_merges_upstream_packages(registry) -> None:
    base, _ = registry
    found = [(p["name"], p["version"]) for p in httpx.get(base + "/search").json()]
    assert found == [("local", "1.0.0"), ("remote", "2.0.0")]


def test_upstream_package_document_is_served(registry) -> None:
    base, _ = registry
    response = httpx.get(base + "/package/remote/2.0.0/")
    assert response.status_code == 200
    assert response.json()["format_version"] == "3.0.0"


def test_files_of_upstream_packages_redirect_to_upstream(registry) -> None:
    base, upstream = registry
    response = httpx.get(base + "/epr/remote/remote-2.0.0.zip")
    assert response.status_code == 301
    assert response.headers["location"] == upstream + "/epr/package/remote-2.0.0.zip"
    static = httpx.get(base + "/package/remote/2.0.0/docs/README.md")
    assert static.headers["location"] == upstream + "/package/remote/2.0.0/docs/README.md"


def test_package_unknown_upstream_is_not_found(registry) -> None:
    base, _ = registry
    response = httpx.get(base + "/package/nowhere/1.0.0/")
    assert (response.status_code, response.text) == (404, "package revision not found\n")


def test_unreachable_upstream_is_a_500(tmp_path: Path) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    with proxied_registry(tmp_path, dead) as server:
        response = httpx.get(server.url + "/search", timeout=120)
        assert (response.status_code, response.text) == (500, "internal server error\n")
        assert json.loads(httpx.get(server.url + "/package/local/1.0.0/").text)["name"] == "local"
