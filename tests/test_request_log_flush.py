"""Request lines are buffered as nginx's `access_log … flush=` buffers them, on a real server:
a line is out within the flush interval with no further traffic, and a graceful stop or a
SIGHUP writes every line still buffered."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

import httpx
import pytest

from serving import Server, fleetgap_serve


@pytest.fixture
def empty_dir(tmp_path: Path) -> Path:
    """A working directory with no config.yml: the server serves its sample packages."""
    directory = tmp_path / "cwd"
    directory.mkdir()
    return directory


def logged_paths(server: Server) -> list[str]:
    paths = []
    for line in server.log_text().splitlines():
        if line.startswith("{"):
            record = json.loads(line)
            if record.get("log.logger") == "http":
                paths.append(record["url.path"])
    return paths


def wait_for(check, timeout: float = 20.0) -> bool:  # type: ignore[no-untyped-def]
    """Poll; the deadline only guards against a hang."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.1)
    return False


def ask(server: Server, count: int) -> list[str]:
    paths = [f"/categories?n={n}" for n in range(count)]
    with httpx.Client(base_url=server.url) as client:
        for path in paths:
            assert client.get(path).status_code in (200, 400)
    return ["/categories"] * count


def test_a_line_is_written_within_the_interval_with_no_further_traffic(
    empty_dir: Path, tmp_path: Path
) -> None:
    with fleetgap_serve("--log-flush-interval", "300ms", cwd=empty_dir, log_dir=tmp_path) as server:
        expected = ask(server, 1)
        assert wait_for(lambda: logged_paths(server) == expected)


@pytest.mark.parametrize("server_kind", ["granian", "uvicorn"])
def test_a_sigterm_d_server_has_written_every_line(
    server_kind: str, empty_dir: Path, tmp_path: Path
) -> None:
    with fleetgap_serve(
        "--log-flush-interval", "60s", "--server", server_kind, cwd=empty_dir, log_dir=tmp_path
    ) as server:
        expected = ask(server, 25)
        time.sleep(1.0)
        assert logged_paths(server) == []  # still in the buffer: the interval is a minute
        server.process.send_signal(signal.SIGTERM)
        assert server.process.wait(timeout=30) == 0
        assert logged_paths(server) == expected


def test_sighup_writes_the_lines_of_the_workers_it_replaces(
    empty_dir: Path, tmp_path: Path
) -> None:
    with fleetgap_serve("--log-flush-interval", "60s", cwd=empty_dir, log_dir=tmp_path) as server:
        expected = ask(server, 5)
        time.sleep(1.0)
        assert logged_paths(server) == []
        server.process.send_signal(signal.SIGHUP)
        assert wait_for(lambda: logged_paths(server) == expected)
        assert server.process.poll() is None


def test_the_interval_is_bounded(empty_dir: Path, tmp_path: Path) -> None:
    import subprocess
    import sys

    result = subprocess.run(
        [sys.executable, "-m", "fleetgap", "serve", "--log-flush-interval", "1h", "-dry-run"],
        cwd=empty_dir,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert result.stderr.strip().splitlines()[-1].startswith("error: --log-flush-interval")
