"""Zip files opened to serve package members are closed (issue 17, item 12): however many
zip packages are asked for, a worker keeps at most MAX_OPEN_ZIPS of them open, and a
member being sent survives its archive being closed meanwhile."""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

import httpx
import pytest

from fleetgap.registry.handlers import MAX_OPEN_ZIPS

from builders import package_files
from serving import fleetgap_serve

PACKAGES = MAX_OPEN_ZIPS + 60
BIG = os.urandom(1 << 20) * 6  # stored uncompressible-ish: a long member to stream


def descendants(pid: int) -> list[int]:
    """`pid` and every process below it (Granian's workers)."""
    found, queue = [], [pid]
    while queue:
        current = queue.pop()
        found.append(current)
        for task in Path(f"/proc/{current}/task").iterdir():
            queue.extend(int(child) for child in (task / "children").read_text().split())
    return found


def open_zips(pid: int, folder: Path) -> int:
    count = 0
    for process in descendants(pid):
        for fd in Path(f"/proc/{process}/fd").iterdir():
            try:
                target = os.readlink(fd)
            except OSError:
                continue
            if target.startswith(str(folder)) and target.endswith(".zip"):
                count += 1
    return count


@pytest.fixture(scope="module")
def packages(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("data") / "packages"
    folder.mkdir()
    for number in range(PACKAGES):
        name = f"pkg{number:03d}"
        with zipfile.ZipFile(folder / f"{name}-1.0.0.zip", "w", zipfile.ZIP_DEFLATED) as archive:
            for relative, text in package_files(name, "1.0.0").items():
                archive.writestr(f"{name}-1.0.0/{relative}", text)
            if number == 0:
                archive.writestr(f"{name}-1.0.0/docs/big.bin", BIG)
    return folder


@pytest.mark.parametrize("server", ["granian", "uvicorn"])
def test_a_worker_keeps_a_bounded_number_of_zips_open(
    packages: Path, server: str, tmp_path: Path
) -> None:
    flags = ["--data", str(packages.parent), "-require-package-signatures=false"]
    flags += ["--server", server, "--workers", "1"]
    with (
        fleetgap_serve(*flags, cwd=tmp_path, log_dir=tmp_path) as running,
        httpx.Client(base_url=running.url) as client,
    ):
        for number in range(PACKAGES):
            name = f"pkg{number:03d}"
            response = client.get(f"/package/{name}/1.0.0/docs/README.md")
            assert (response.status_code, response.text) == (200, f"# {name}\n")
        held = open_zips(running.process.pid, packages)
        assert held <= MAX_OPEN_ZIPS
        again = client.get("/package/pkg000/1.0.0/docs/README.md")  # reopened
        assert again.text == "# pkg000\n"


def test_a_member_being_sent_survives_its_zip_being_closed(packages: Path, tmp_path: Path) -> None:
    flags = ["--data", str(packages.parent), "-require-package-signatures=false"]
    with (
        fleetgap_serve(*flags, cwd=tmp_path, log_dir=tmp_path) as running,
        httpx.Client(base_url=running.url) as client,
        client.stream("GET", "/package/pkg000/1.0.0/docs/big.bin") as big,
    ):
        chunks = big.iter_bytes()
        received = next(chunks)
        # every other package is opened meanwhile: pkg000's archive is closed
        for number in range(1, PACKAGES):
            client.get(f"/package/pkg{number:03d}/1.0.0/docs/README.md")
        received += b"".join(chunks)
    assert received == BIG
