"""The wheels the offline-kit tests install from, so that no test reaches a package index.

`.ci/run` runs this file once (`python tests/bundle/kit_wheels.py`), with network: it fills
.ci/wheels/ (git-ignored) with every dependency of fleetgap, and pip, for this machine's
platform and Python, fetched by the kit's own `pip download` command line. fleetgap's own
wheel is not kept there: each test run builds it from the source under test
(`build_own_wheel`), offline.
"""

from __future__ import annotations

import platform
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
WHEELS = REPO / ".ci" / "wheels"


def this_platform() -> str:
    return {"x86_64": "linux-x86_64", "aarch64": "linux-arm64"}[platform.machine()]


def this_python() -> str:
    return f"{sys.version_info[0]}.{sys.version_info[1]}"


def build_own_wheel(dest: Path) -> Path:
    """fleetgap's wheel from this source tree, built offline from a copy (no build/ left in
    the repository)."""
    with tempfile.TemporaryDirectory() as work:
        copy = Path(work) / "fleetgap"
        copy.mkdir()
        shutil.copy(REPO / "pyproject.toml", copy)
        shutil.copy(REPO / "README.md", copy)
        shutil.copytree(REPO / "src", copy / "src", ignore=shutil.ignore_patterns("__pycache__"))
        dest.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-index",
             "--no-build-isolation", "--disable-pip-version-check", "-w", str(dest), str(copy)],
            check=True,
            capture_output=True,
            timeout=300,
        )  # fmt: skip
    (wheel,) = dest.glob("fleetgap-*.whl")
    return wheel


def fill(dest: Path = WHEELS) -> None:
    from fleetgap.bundle.kit import KitTarget, download_wheels

    with tempfile.TemporaryDirectory() as own:
        build_own_wheel(Path(own))
        target = KitTarget((this_platform(),), (this_python(),))
        download_wheels(dest, target, find_links=Path(own), index=True)
    for wheel in dest.glob("fleetgap-*.whl"):
        wheel.unlink()


if __name__ == "__main__":
    folder = Path(sys.argv[1]) if len(sys.argv) > 1 else WHEELS
    fill(folder)
    print(f"{folder}: {len(list(folder.glob('*.whl')))} wheels")
