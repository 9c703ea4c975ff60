"""fleetgap.net against real servers on 127.0.0.1: resume, If-Range, retries, errors."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import re
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette
from starlette.responses import FileResponse, RedirectResponse, Response, StreamingResponse
from starlette.routing import Mount, Route

from artifacts.conftest import Recorder, ServerThread, serve_downloads
from fleetgap.errors import FleetgapError
from fleetgap.net import Net, NetError, NetOptions, part_meta

SIZE = 3 << 20
QUICK = NetOptions(attempts=4, wait_initial=0.01, wait_max=0.02, timeout=10)


@pytest.fixture
def origin(tmp_path):
    root = tmp_path / "root"
    root.mkdir()
    content = os.urandom(SIZE)
    (root / "big.bin").write_bytes(content)
    (root / "small.txt").write_bytes(b"hello\n")
    recorder, server = serve_downloads(root)
    with server:
        yield server, recorder, root, content


def test_fresh_download_hashes_and_remembers_a_validator(origin, tmp_path):
    server, recorder, _, content = origin
    part = tmp_path / "in" / "big.bin.part"
    url = f"{server.url}/downloads/big.bin"
    with Net(QUICK) as net:
        got = net.download(url, part)
    assert part.read_bytes() == content
    assert (got.size, got.resumed_from, got.received) == (SIZE, 0, SIZE)
    assert got.sha512 == hashlib.sha512(content).hexdigest()
    meta = json.loads(part_meta(part).read_text())
    assert meta["url"] == url and meta["validator"].startswith('"')


def test_resume_sends_range_and_if_range_and_fetches_only_the_rest(origin, tmp_path):
    server, recorder, _, content = origin
    url = f"{server.url}/downloads/big.bin"
    part = tmp_path / "big.bin.part"
    etag = httpx.head(url).headers["etag"]
    part.write_bytes(content[:1000])
    part_meta(part).write_text(json.dumps({"url": url, "validator": etag}))
    recorder.clear()
    with Net(QUICK) as net:
        got = net.download(url, part)
    (hit,) = recorder.for_path("big.bin")
    assert (hit.range, hit.status, hit.sent) == ("bytes=1000-", 206, SIZE - 1000)
    assert (got.resumed_from, got.received) == (1000, SIZE - 1000)
    assert part.read_bytes() == content
    assert got.sha512 == hashlib.sha512(content).hexdigest()


def test_changed_upstream_restarts_from_zero(origin, tmp_path):
    server, recorder, _, content = origin
    url = f"{server.url}/downloads/big.bin"
    part = tmp_path / "big.bin.part"
    part.write_bytes(b"old bytes of an older build")
    part_meta(part).write_text(json.dumps({"url": url, "validator": '"stale-etag"'}))
    with Net(QUICK) as net:
        got = net.download(url, part)
    (hit,) = recorder.for_path("big.bin")
    assert hit.status == 200 and hit.sent == SIZE
    assert part.read_bytes() == content and got.resumed_from == 0


def test_part_without_validator_is_not_trusted(origin, tmp_path):
    server, recorder, _, content = origin
    part = tmp_path / "big.bin.part"
    part.write_bytes(content[:5000])
    with Net(QUICK) as net:
        net.download(f"{server.url}/downloads/big.bin", part)
    (hit,) = recorder.for_path("big.bin")
    assert hit.range is None and hit.sent == SIZE


def test_complete_part_is_not_fetched_again(origin, tmp_path):
    server, recorder, _, content = origin
    url = f"{server.url}/downloads/big.bin"
    part = tmp_path / "big.bin.part"
    part.write_bytes(content)
    part_meta(part).write_text(
        json.dumps({"url": url, "validator": httpx.head(url).headers["etag"]})
    )
    recorder.clear()
    with Net(QUICK) as net:
        got = net.download(url, part)
    (hit,) = recorder.for_path("big.bin")
    assert hit.status == 416 and got.received == 0
    assert got.sha512 == hashlib.sha512(content).hexdigest()


def test_missing_file_fails_at_once_without_retries(origin, tmp_path):
    server, recorder, _, _ = origin
    with Net(QUICK) as net, pytest.raises(NetError) as caught:
        net.get_bytes(f"{server.url}/downloads/nope.asc")
    assert caught.value.status == 404
    assert "HTTP 404" in str(caught.value)
    assert len(recorder.for_path("nope.asc")) == 1


def test_small_files_and_sizes(origin):
    server, _, _, _ = origin
    with Net(QUICK) as net:
        assert net.get_bytes(f"{server.url}/downloads/small.txt") == b"hello\n"
        assert net.content_length(f"{server.url}/downloads/big.bin") == SIZE
        with pytest.raises(NetError, match="larger than 10 bytes"):
            net.get_bytes(f"{server.url}/downloads/big.bin", limit=10)


class Flaky:
    """Answers 503 twice, then cuts the body short once, then behaves."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.calls = 0

    def app(self):
        async def endpoint(request):
            self.calls += 1
            if self.calls <= 2:
                return Response("busy", status_code=503)
            return FileResponse(self.path)

        return Starlette(routes=[Route("/f", endpoint)])


def test_5xx_is_retried_then_succeeds(tmp_path):
    file = tmp_path / "f"
    file.write_bytes(b"x" * 1000)
    flaky = Flaky(file)
    with ServerThread(flaky.app()) as server, Net(QUICK) as net:
        got = net.download(f"{server.url}/f", tmp_path / "f.part")
    assert flaky.calls == 3 and got.size == 1000


def test_connection_cut_mid_body_is_resumed_by_the_retry(tmp_path):
    content = os.urandom(1 << 20)
    file = tmp_path / "f"
    file.write_bytes(content)
    inner = Starlette(routes=[Mount("/", app=_file_app(file))])
    recorder = Recorder(inner)
    state = {"cut": False}

    async def cutting(scope, receive, send):
        if scope["type"] == "http" and not state["cut"]:
            state["cut"] = True
            sent = 0

            async def half(message):
                nonlocal sent
                if message["type"] == "http.response.body":
                    if sent > len(content) // 2:
                        raise RuntimeError("connection lost")
                    sent += len(message.get("body", b""))
                await send(message)

            return await recorder(scope, receive, half)
        return await recorder(scope, receive, send)

    with ServerThread(cutting) as server, Net(QUICK) as net:
        got = net.download(f"{server.url}/f", tmp_path / "f.part")
    assert got.sha512 == hashlib.sha512(content).hexdigest()
    first, second = recorder.hits
    assert first.range is None and second.range is not None
    assert second.range == f"bytes={got.resumed_from}-" and got.resumed_from > 0


def _file_app(file: Path):
    class _Small(FileResponse):
        chunk_size = 64 * 1024

    async def endpoint(request):
        return _Small(file)

    return Starlette(routes=[Route("/f", endpoint)])


def test_unusable_ca_bundle_is_a_clear_error(tmp_path):
    bad = tmp_path / "ca.pem"
    bad.write_text("not a certificate")
    with pytest.raises(FleetgapError, match="cannot use CA bundle"):
        Net(NetOptions(ca_cert=bad))


def test_untrusted_certificate_is_not_retried(tmp_path):
    import trustme

    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    cert_file, key_file = tmp_path / "c.pem", tmp_path / "k.pem"
    cert.private_key_and_cert_chain_pem.write_to_path(str(cert_file))
    cert.private_key_pem.write_to_path(str(key_file))
    (tmp_path / "root").mkdir()
    (tmp_path / "root" / "a").write_text("a")
    recorder, server = serve_downloads(
        tmp_path / "root", ssl_context_files=(str(cert_file), str(key_file))
    )
    with server, Net(QUICK) as net:
        with pytest.raises(NetError, match="CERTIFICATE_VERIFY_FAILED"):
            net.get_bytes(f"{server.url}/downloads/a")
        ca_file = tmp_path / "ca.pem"
        ca.cert_pem.write_to_path(str(ca_file))
        with Net(NetOptions(ca_cert=ca_file)) as trusting:
            assert trusting.get_bytes(f"{server.url}/downloads/a") == b"a"


# --- bounds: sizes, deadlines, redirects ---------------------------------------------------


def _endless_app(counter: dict[str, int], length: int | None = None) -> Starlette:
    """`/endless`: a body that never ends (chunked), or announces `length` bytes."""

    async def endless(request):
        async def body():
            while not await request.is_disconnected():
                counter["sent"] += 1 << 16
                yield b"\0" * (1 << 16)

        headers = {"content-length": str(length)} if length is not None else {}
        return StreamingResponse(body(), headers=headers)

    return Starlette(routes=[Route("/endless", endless)])


def test_a_download_stops_at_the_limit_and_leaves_no_part(tmp_path):
    counter = {"sent": 0}
    part = tmp_path / "f.part"
    with (
        ServerThread(_endless_app(counter)) as server,
        Net(QUICK) as net,
        pytest.raises(NetError, match=r"more than the 1048576 bytes expected"),
    ):
        net.download(f"{server.url}/endless", part, limit=1 << 20)
    assert not part.exists()
    assert counter["sent"] < 64 << 20  # stopped, not read on to the end of the disk


def test_an_announced_size_beyond_the_limit_is_refused_before_reading(tmp_path):
    counter = {"sent": 0}
    with (
        ServerThread(_endless_app(counter, length=5 << 30)) as server,
        Net(QUICK) as net,
        pytest.raises(NetError, match=r"larger than 1048576 bytes \(5368709120 announced\)"),
    ):
        net.download(f"{server.url}/endless", tmp_path / "f.part", limit=1 << 20)
    assert counter["sent"] < 64 << 20


def test_get_bytes_meets_its_overall_deadline(tmp_path):
    async def trickle(request):
        async def body():
            while not await request.is_disconnected():
                yield b"x"
                await asyncio.sleep(0.2)  # every read succeeds: only a deadline ends it

        return StreamingResponse(body())

    app = Starlette(routes=[Route("/t", trickle)])
    with (
        ServerThread(app) as server,
        Net(QUICK) as net,
        pytest.raises(NetError, match="timed out"),
    ):
        net.get_bytes(f"{server.url}/t", deadline=1.0)


def test_same_origin_redirects_only(tmp_path):
    async def target(request):
        return Response(b"payload")

    with ServerThread(Starlette(routes=[Route("/t", target)])) as other:

        async def moved(request):
            where = request.query_params["to"]
            return RedirectResponse(other.url + "/t" if where == "other" else "/here/t", 302)

        routes = [Route("/r", moved), Route("/here/t", target)]
        with ServerThread(Starlette(routes=routes)) as server:
            same = NetOptions(attempts=1, same_origin_redirects=True)
            with Net(same) as net:
                assert net.get_bytes(f"{server.url}/r?to=here") == b"payload"
                with pytest.raises(NetError, match="redirect to another origin refused"):
                    net.get_bytes(f"{server.url}/r?to=other")
            with Net(NetOptions(attempts=1)) as net:  # the default follows, as before
                assert net.get_bytes(f"{server.url}/r?to=other") == b"payload"


def test_each_retry_is_one_line_naming_the_url_attempt_reason_and_wait(tmp_path):
    file = tmp_path / "f"
    file.write_bytes(b"x" * 1000)
    lines: list[str] = []
    options = NetOptions(attempts=4, wait_initial=0.01, wait_max=0.02, on_retry=lines.append)
    with ServerThread(Flaky(file).app()) as server, Net(options) as net:
        net.download(f"{server.url}/f", tmp_path / "f.part")
    assert lines == [
        f"{server.url}/f: attempt 1 of 4 failed (HTTP 503 Service Unavailable); retrying in 0.01 s",
        f"{server.url}/f: attempt 2 of 4 failed (HTTP 503 Service Unavailable); retrying in 0.02 s",
    ]


def _closed_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _plan_unreachable(tmp_path: Path, *args: str):
    import subprocess
    import sys

    from bundle.tests_env import run_env

    url = f"http://127.0.0.1:{_closed_port()}"
    (tmp_path / "s.yaml").write_text(f"address: {url}\nqueries:\n  - package: nginx\n")
    run = subprocess.run(
        [sys.executable, "-m", "fleetgap", "bundle", "plan", "s.yaml", *args],
        capture_output=True, text=True, env=run_env(), cwd=tmp_path, timeout=120,
    )  # fmt: skip
    return url, run


RETRY_LINE = re.compile(
    r"^(\S+): attempt (\d+) of (\d+) failed \(ConnectError: .*refused\); retrying in ([\d.]+) s$"
)


def test_an_unreachable_host_waits_at_most_30_s_by_default_with_readable_lines(tmp_path):
    url, run = _plan_unreachable(tmp_path)
    lines = run.stderr.strip().splitlines()
    assert run.returncode == 1 and "stamina" not in run.stderr
    assert lines[-1].startswith(f"error: {url}/search?package=nginx: ConnectError")
    retries = [RETRY_LINE.match(line) for line in lines[:-1]]
    assert all(retries), lines
    assert [(m[1], int(m[2]), int(m[3])) for m in retries] == [
        (f"{url}/search?package=nginx", n, 6) for n in range(1, 6)
    ]
    assert sum(float(m[4]) for m in retries) <= 30


def test_retries_is_settable(tmp_path):
    _, run = _plan_unreachable(tmp_path, "--retries", "1")
    lines = run.stderr.strip().splitlines()
    assert run.returncode == 1 and len(lines) == 2
    match = RETRY_LINE.match(lines[0])
    assert match and (match[2], match[3], match[4]) == ("1", "2", "1")
    _, run = _plan_unreachable(tmp_path, "--retries", "0")
    assert run.returncode == 1 and len(run.stderr.strip().splitlines()) == 1
