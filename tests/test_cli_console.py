"""What commands print from outside (a bundle's manifest, a registry's answer) reaches the
terminal escaped: its control characters cannot retitle, clear or rewrite the terminal,
and rich markup in it is shown, not rendered."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
import time
from pathlib import Path

import httpx
from click.testing import CliRunner
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from fleetgap.bundle.manifest import FORMAT, FORMAT_VERSION, MANIFEST_NAME
from fleetgap.bundle.parts import Trailer
from fleetgap.cli import main
from fleetgap.cli.console import markup_safe, shown

from serving import fleetgap_serve, serve_asgi

SET_TITLE = "\x1b]0;all checks passed\x07"  # OSC 0: sets the terminal's title
CLEAR = "\x1b[2J\x1b[H"  # erase the screen, cursor home
RTL = "\u202e"  # right-to-left override: reorders what follows


def hostile_bundle(path: Path) -> Path:
    """A bundle (one part: a tar holding only its manifest, then the part trailer) whose
    manifest's text fields carry terminal control sequences and rich markup."""
    manifest = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "bundle_id": "ab" * 16,
        "created": f"2026-01-31T12:00:00Z{SET_TITLE}\nall checks passed",
        "sequence": 7,
        "fleetgap_version": f"[blink]9.9[/blink]{CLEAR}{RTL}txt.exe",
        "selection": {},
        "delta": False,
        "base": None,
        "files": [],
    }
    data = json.dumps(manifest).encode()
    payload = io.BytesIO()
    with tarfile.open(fileobj=payload, mode="w:", format=tarfile.PAX_FORMAT) as tar:
        info = tarfile.TarInfo(MANIFEST_NAME)
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    body = payload.getvalue()
    trailer = Trailer("ab" * 16, 1, 1, len(body), hashlib.sha256(body).hexdigest())
    path.write_bytes(body + trailer.encode())
    return path


def test_bundle_inspect_shows_the_manifests_control_characters_escaped(tmp_path: Path) -> None:
    bundle = hostile_bundle(tmp_path / "hostile.bundle")
    result = CliRunner().invoke(main, ["bundle", "inspect", str(bundle)])
    assert result.exit_code == 0, result.output
    first = result.output.splitlines()[0]
    assert first == (
        f"bundle {'ab' * 16} sequence 7 created 2026-01-31T12:00:00Z\\x1b]0;all checks "
        "passed\\x07\\x0aall checks passed by fleetgap [blink]9.9[/blink]\\x1b[2J\\x1b[H"
        "\\u202etxt.exe"
    )
    assert not any(c in result.output for c in "\x1b\x07\u202e")


def test_doctor_shows_markup_and_escapes_from_a_registry_as_text(tmp_path: Path) -> None:
    version = f"[bold green]1.0.0[/] all checks passed{SET_TITLE}"

    async def search(request: Request) -> JSONResponse:
        return JSONResponse([{"name": "fleet_server", "version": version, "title": "x"}])

    app = Starlette(routes=[Route("/search", search)])
    with serve_asgi(app) as url:
        result = CliRunner().invoke(
            main,
            ["doctor", "--stack-version", "9.1.0", "--registry", url, "--timeout", "5"],
            env={"COLUMNS": "400"},
        )
    assert result.exit_code == 1
    assert "fleet_server-[bold green]1.0.0[/] all checks passed\\x1b]0;all checks passed\\x07" in (
        result.output
    )
    assert "\x1b" not in result.output and "\x07" not in result.output


def test_shown_keeps_lines_and_printable_text() -> None:
    text = "größe 12 MB\tok\nnext line: Ünïcödé, 日本語, emoji 🙂"
    assert shown(text) == text
    assert shown("a\nb\tc", one_line=True) == "a\\x0ab\\x09c"
    assert shown("\x00\x1b\x7f\x85\x9b") == "\\x00\\x1b\\x7f\\x85\\x9b"
    assert markup_safe("[red]x[/red]\n") == "\\[red]x\\[/red]\\x0a"


def test_the_dev_log_shows_a_request_paths_control_characters_escaped(tmp_path: Path) -> None:
    """`-log-type dev` writes text for a terminal (`docker logs -f`); a client's path is
    percent-decoded before it is logged."""
    with fleetgap_serve("-log-type", "dev", log_dir=tmp_path) as server:
        answer = httpx.get(server.url + "/%1B]0;all%20checks%20passed%07x")
        time.sleep(0.5)
        log = server.log_text()
    assert answer.status_code == 404
    assert "GET /\\x1b]0;all checks passed\\x07x HTTP/1.1" in log
    assert "\x1b" not in log and "\x07" not in log
