"""The doctor's downloads are bounded and stay on their origin: real servers on 127.0.0.1."""

from __future__ import annotations

from pathlib import Path

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response, StreamingResponse
from starlette.routing import Route
from test_doctor import doctor

from artifacts.conftest import ServerThread
from fleetgap.ops.probe import Probe, ProbeError


class Endless:
    def __init__(self) -> None:
        self.sent = 0

    def app(self) -> Starlette:
        async def endless(request: Request) -> Response:
            announce = request.query_params.get("announce")
            headers = {"content-length": announce} if announce else {}
            return StreamingResponse(self._body(request), headers=headers)

        return Starlette(routes=[Route("/endless", endless)])

    async def _body(self, request: Request):
        while not await request.is_disconnected():
            self.sent += 1 << 16
            yield b"\0" * (1 << 16)


def test_a_download_stops_past_its_limit(tmp_path: Path) -> None:
    source = Endless()
    probe = Probe(None, 10)
    with ServerThread(source.app()) as server:
        with pytest.raises(ProbeError, match="more than 1048576 bytes; download stopped"):
            probe.download(f"{server.url}/endless", tmp_path / "f", 1 << 20)
        with pytest.raises(ProbeError, match=r"larger than 1048576 bytes \(5368709120 announced"):
            probe.download(f"{server.url}/endless?announce={5 << 30}", tmp_path / "g", 1 << 20)
        with pytest.raises(ProbeError, match="larger than 1048576 bytes"):
            probe.get(f"{server.url}/endless?announce={5 << 30}", 1 << 20)
    probe.close()
    assert source.sent < 64 << 20


@pytest.fixture
def elsewhere():
    """A server on another port that would answer anything, recording what it is asked."""
    asked: list[str] = []

    async def anything(request: Request) -> Response:
        asked.append(request.url.path)
        return Response(b"payload")

    with ServerThread(Starlette(routes=[Route("/{p:path}", anything)])) as server:
        yield server.url, asked


def _redirector(target: str) -> Starlette:
    async def moved(request: Request) -> Response:
        return RedirectResponse(target + request.url.path, 302)

    return Starlette(routes=[Route("/{p:path}", moved)])


def test_the_probe_follows_no_redirect_to_another_origin(tmp_path: Path, elsewhere) -> None:
    other, asked = elsewhere
    probe = Probe(None, 10)
    with ServerThread(_redirector(other)) as server:
        for call in (
            lambda: probe.get(server.url + "/a"),
            lambda: probe.exists(server.url + "/b"),
            lambda: probe.download(server.url + "/c", tmp_path / "c", 1 << 20),
        ):
            with pytest.raises(ProbeError, match="redirect to another origin refused"):
                call()
    probe.close()
    assert asked == []


def test_a_redirect_within_the_origin_is_followed(tmp_path: Path) -> None:
    async def moved(request: Request) -> Response:
        return RedirectResponse("/there", 301)

    async def there(request: Request) -> Response:
        return Response(b"payload")

    app = Starlette(routes=[Route("/here", moved), Route("/there", there)])
    probe = Probe(None, 10)
    with ServerThread(app) as server:
        assert probe.get(server.url + "/here").content == b"payload"
    probe.close()


def test_doctor_reports_a_key_url_redirected_elsewhere(closed_side) -> None:
    """The key URL redirects to another origin that serves the real key: the doctor does
    not follow, and says why in one line."""
    with ServerThread(_redirector(closed_side.url)) as redirector:
        key_url = redirector.url + "/GPG-KEY-elastic-agent"
        code, checks = doctor(closed_side, **{"--key-url": key_url})
    assert code == 1
    assert checks["key url"]["status"] == "fail"
    detail = checks["key url"]["detail"]
    assert "redirect to another origin refused" in detail
    assert "\n" not in detail
