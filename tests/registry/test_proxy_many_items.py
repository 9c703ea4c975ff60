"""A proxy-mode upstream answer well under MAX_BODY that holds millions of tiny JSON
objects: parsed as it was, on the event loop, one anonymous /search froze the whole worker
(every route, /health included) for a minute and took it past a gigabyte. Now such an
answer is counted before it is parsed, and answers are parsed on a thread of their own."""

from __future__ import annotations

import threading
from pathlib import Path

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from test_proxy_bounds import proxied

from serving import serve_asgi

ITEMS = 6_000_000  # 18 MB of "{},": under MAX_BODY, 12 M values: over MAX_STRUCTURE


def _many_items_app() -> Starlette:
    body = b"[" + b"{}," * (ITEMS - 1) + b"{}]"

    async def search(request: Request) -> Response:
        return Response(body, media_type="application/json")

    return Starlette(routes=[Route("/search", search), Route("/categories", search)])


def test_an_upstream_answer_of_many_tiny_items_does_not_freeze_the_worker(
    tmp_path: Path,
) -> None:
    with serve_asgi(_many_items_app()) as upstream, proxied(tmp_path, upstream) as server:
        search = threading.Thread(
            target=lambda: httpx.get(server.url + "/search", timeout=120), daemon=True
        )
        search.start()
        search.join(1.0)  # the upstream has answered; the worker converts a million items
        health = httpx.get(server.url + "/health", timeout=5)  # was a ReadTimeout
        assert health.status_code == 200
        search.join(60)
        assert not search.is_alive()
        assert "JSON values, more than 5000000" in server.log_text()


def test_answers_are_parsed_off_the_event_loop(tmp_path: Path) -> None:
    """Within the counts, a big answer is still parsed away from the loop: /health answers
    while it is."""
    items = 2_400_000  # 7 MB of "{},": 4.8 M values, just under MAX_STRUCTURE
    body = b"[" + b"{}," * (items - 1) + b"{}]"

    async def search(request: Request) -> Response:
        return Response(body, media_type="application/json")

    app = Starlette(routes=[Route("/search", search)])
    with serve_asgi(app) as upstream, proxied(tmp_path, upstream) as server:
        answers: list[int] = []
        search_thread = threading.Thread(
            target=lambda: answers.append(
                httpx.get(server.url + "/search", timeout=120).status_code
            ),
            daemon=True,
        )
        search_thread.start()
        search_thread.join(1.0)
        assert httpx.get(server.url + "/health", timeout=5).status_code == 200
        search_thread.join(120)
        assert answers == [500]  # more items than MAX_ITEMS: refused after parsing
