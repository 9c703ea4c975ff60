"""`fleetgap serve --data DIR` picks up a finished load (the generation file) without a
restart, and answers every request while it swaps."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import httpx
import pytest

from fleetgap.store import DataDir, bump_generation

from builders import write_zip_package
from serving import fleetgap_serve

LIVENESS_SECONDS = 15.0  # generous: the design target (0.5 s poll + rescan) is in the README


def _names(url: str) -> set[str]:
    response = httpx.get(f"{url}/search", params={"all": "true"}, timeout=5)
    response.raise_for_status()
    return {f"{p['name']}-{p['version']}" for p in response.json()}


def _wait_for(url: str, wanted: str) -> bool:
    deadline = time.monotonic() + LIVENESS_SECONDS
    while time.monotonic() < deadline:
        if wanted in _names(url):
            return True
        time.sleep(0.1)
    return False


class _Traffic:
    """Kibana-like requests in a loop; remembers every failure."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.failures: list[str] = []
        self.count = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> _Traffic:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join(10)

    def _run(self) -> None:
        with httpx.Client(base_url=self.url, timeout=10) as client:
            while not self._stop.is_set():
                for path in ("/search?kibana.version=9.1.0", "/categories", "/health"):
                    try:
                        status = client.get(path).status_code
                    except httpx.HTTPError as exc:
                        self.failures.append(f"{path}: {exc!r}")
                        continue
                    self.count += 1
                    if status != 200:
                        self.failures.append(f"{path}: {status}")


@pytest.fixture
def data(tmp_path: Path) -> DataDir:
    data = DataDir(tmp_path / "data").ensure()
    write_zip_package(data.packages, "alpha", "1.0.0")
    return data


@pytest.mark.parametrize("workers", ["1", "2"])
def test_a_finished_load_is_served_without_restart(data: DataDir, tmp_path: Path, workers: str):
    flags = ["--data", str(data.root), "-require-package-signatures=false", "--workers", workers]
    with fleetgap_serve(*flags, cwd=tmp_path, log_dir=tmp_path) as server:
        assert _names(server.url) == {"alpha-1.0.0"}
        with _Traffic(server.url) as traffic:
            write_zip_package(data.packages, "beta", "2.0.0")
            time.sleep(1.5)  # no package watcher runs: a file alone is not a finished load
            assert "beta-2.0.0" not in _names(server.url)
            bump_generation(data, "test-load")
            assert _wait_for(server.url, "beta-2.0.0")
            # every worker swapped, not just the one that answered first
            assert all("beta-2.0.0" in _names(server.url) for _ in range(20))
        assert traffic.count > 0
        assert traffic.failures == []
