"""`artifacts mirror` against a source on 127.0.0.1 whose binary never ends: the download
stops past the size it expects, leaves no partial file, and nothing is published."""

from __future__ import annotations

import hashlib
from pathlib import Path

from click.testing import CliRunner
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from fleetgap.artifacts.catalogue import load_catalogue
from fleetgap.artifacts.mirror import FAILED, mirror
from fleetgap.cli import main
from fleetgap.pgp.signatures import sign_bytes
from fleetgap.store import DataDir

from .conftest import ServerThread

PATH = "beats/filebeat/filebeat-9.1.0-linux-x86_64.tar.gz"
CONTENT = b"the real tarball"


class EndlessSource:
    """Valid `.sha512` and `.asc` for CONTENT, then a binary that never ends."""

    def __init__(self, signing_key, announce: int | None = None) -> None:
        self.sent = 0
        self.announce = announce
        name = PATH.rsplit("/", 1)[1]
        self.sidecars = {
            ".sha512": f"{hashlib.sha512(CONTENT).hexdigest()}  {name}\n".encode(),
            ".asc": sign_bytes(CONTENT, signing_key),
        }

    def app(self) -> Starlette:
        async def serve(request: Request) -> Response:
            path = request.path_params["path"]
            for suffix, body in self.sidecars.items():
                if path == PATH + suffix:
                    return Response(body)
            if path != PATH:
                return Response(b"404 page not found\n", 404)
            headers = {"content-length": str(self.announce)} if self.announce else {}
            return StreamingResponse(self._endless(request), headers=headers)

        return Starlette(routes=[Route("/downloads/{path:path}", serve)])

    async def _endless(self, request: Request):
        while not await request.is_disconnected():
            self.sent += 1 << 16
            yield b"\0" * (1 << 16)


def _leftovers(data: Path) -> list[Path]:
    return [p for p in (data / "state" / "incoming").rglob("*") if p.is_file()]


def test_an_endless_binary_stops_at_the_size_limit(tmp_path, signing_key) -> None:
    source = EndlessSource(signing_key)
    data = DataDir(tmp_path / "data")
    artifacts = load_catalogue().select("9.1.0", ["filebeat"], ["linux-x86_64"], ["tar.gz"])
    with ServerThread(source.app()) as server:
        report = mirror(
            artifacts,
            data,
            [signing_key.public_key],
            source=f"{server.url}/downloads/",
            max_size=4 << 20,
        )
    (outcome,) = report.outcomes
    assert outcome.status == FAILED
    assert "more than the 4194304 bytes expected; download stopped" in outcome.reason
    assert source.sent < 64 << 20
    assert not (data.downloads / PATH).exists()
    assert _leftovers(tmp_path / "data") == []


def test_a_binary_announced_beyond_the_limit_is_not_read(
    tmp_path, signing_key, public_key_file
) -> None:
    """Through the command, with its default limit: a 5 GiB announcement is refused."""
    source = EndlessSource(signing_key, announce=5 << 30)
    data = tmp_path / "data"
    with ServerThread(source.app()) as server:
        result = CliRunner().invoke(
            main,
            ["artifacts", "mirror", "--source", f"{server.url}/downloads/", "--data", str(data)]
            + ["--key", str(public_key_file), "--version", "9.1.0", "--product", "filebeat"]
            + ["--platform", "linux-x86_64", "--package-type", "tar.gz"],
        )
    assert result.exit_code == 1, result.output
    assert f"FAILED {PATH}: " in result.output
    assert "(5368709120 announced)" in result.output
    assert "Traceback" not in result.output
    assert source.sent < 64 << 20
    assert not (data / "downloads" / PATH).exists()
    assert _leftovers(data) == []
