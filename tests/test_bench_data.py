"""The benchmark's generated registry is one fleetgap serves whole: nothing refused."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from fleetgap.packages.index import LoadOptions, load_index
from fleetgap.pgp.sha512 import check_sha512

from corpus import REPO


def test_small_generated_registry_loads_without_refusals(tmp_path: Path) -> None:
    out = tmp_path / "bench"
    subprocess.run(
        [sys.executable, str(REPO / "bench" / "gen.py"), str(out), "--small"],
        check=True,
        capture_output=True,
    )
    index = load_index(LoadOptions((out / "packages",), require_signatures=True))
    assert index.refused == ()
    assert len(index) == len(list((out / "packages").glob("*.zip")))
    artifact = next((out / "downloads").rglob("*.tar.gz"))
    check_sha512(artifact, Path(f"{artifact}.sha512").read_text())
