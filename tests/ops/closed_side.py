"""A complete closed-side data directory: signed packages, artifacts with sidecars, keys,
Elastic Defend's protection artifacts for STACK."""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from artifacts.conftest import Upstream
from defend_upstream import SHARED, publish
from fleetgap.artifacts.catalogue import load_catalogue
from fleetgap.ops.doctor import ARCHIVES, PRODUCTS, SETUP_PACKAGES
from fleetgap.pgp.keys import SecretKey
from fleetgap.pgp.package_signatures import sign_package

from builders import write_zip_package

STACK = "9.1.0"
PLATFORMS = ("linux-x86_64", "windows-x86_64")
EXTRA_PACKAGE = "nginx"
DEFEND_MANIFEST_VERSION = "1.0.2345"


def build_data_dir(root: Path, key: SecretKey) -> Path:
    """DATA/ as `bundle load` leaves it for STACK on PLATFORMS, everything signed by `key`."""
    packages = root / "packages"
    for name in (*SETUP_PACKAGES, EXTRA_PACKAGE):
        sign_package(write_zip_package(packages, name, "1.0.0"), key)
    publisher = Upstream(root / "downloads", recorder=None, server=None)  # type: ignore[arg-type]
    for artifact in load_catalogue().select(STACK, PRODUCTS, PLATFORMS, ARCHIVES):
        publisher.publish(artifact.path, f"{artifact.name} bytes\n".encode() * 100, key)
    keys = root / "keys"
    keys.mkdir(parents=True, exist_ok=True)
    (keys / "GPG-KEY-elastic-agent").write_text(key.public_key.armored)
    publish(root, STACK, DEFEND_MANIFEST_VERSION, SHARED)
    (root / "state").mkdir(exist_ok=True)
    return root


def agent_path(platform: str) -> str:
    """Relative path under downloads/ of STACK's elastic-agent archive for `platform`."""
    (artifact,) = load_catalogue().select(STACK, ["elastic-agent"], [platform], ARCHIVES)
    return artifact.path


@contextlib.contextmanager
def moved_away(*paths: Path) -> Iterator[None]:
    """Take files out of the data directory for one case, then put them back. They wait
    outside it: the registry indexes every *.zip below packages/, dot names included."""
    parking = Path(tempfile.mkdtemp(prefix="fleetgap-parked-"))
    parked = [(path, parking / f"{index}-{path.name}") for index, path in enumerate(paths)]
    for path, aside in parked:
        shutil.move(path, aside)
    try:
        yield
    finally:
        for path, aside in parked:
            shutil.move(aside, path)
        parking.rmdir()


def copy_tree(source: Path, target: Path) -> Path:
    shutil.copytree(source, target)
    return target
