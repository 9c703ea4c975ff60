"""Session fixtures for the offline kit: the wheels, one kit, and ONE install of it.

The kit is made by `fleetgap kit create --find-links` and installed by its install.sh, both
inside a network namespace with only loopback (`unshare --net`), so nothing here can reach a
package index. Installing takes a venv and a pip run: it happens once per test run and every
test that needs fleetgap as the kit installs it shares that install.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pysequoia
import pytest

from bundle.kit_wheels import WHEELS, build_own_wheel, this_platform, this_python
from fleetgap import __version__
from fleetgap.pgp.keys import SecretKey

SRC = str(Path(__file__).resolve().parents[1] / "src")
KIT_DIR = f"fleetgap-kit-{__version__}"


def offline(command: list, *, env: dict[str, str], cwd: Path | None = None, timeout: int = 600):
    """Run `command` in a new network namespace holding only loopback (brought up)."""
    unshare = ["unshare", "--net"] if os.geteuid() == 0 else ["unshare", "--map-root-user", "--net"]
    script = 'ip link set lo up && exec "$@"'
    return subprocess.run(
        [*unshare, "sh", "-c", script, "sh", *map(str, command)],
        env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout,
    )  # fmt: skip


def source_env() -> dict[str, str]:
    """`python -m fleetgap` runs this checkout."""
    return {**os.environ, "PYTHONPATH": SRC}


def clean_env() -> dict[str, str]:
    """Nothing of this checkout or of pip's settings: what a closed-side shell has."""
    drop = ("PYTHONPATH", "VIRTUAL_ENV", "PIP_FIND_LINKS", "PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL")
    return {k: v for k, v in os.environ.items() if k not in drop}


@dataclass(frozen=True)
class Kit:
    tar: Path
    folder: Path  # the extracted fleetgap-kit-<version>/
    links: Path  # the wheels it was made from
    signer: SecretKey
    signer_public: Path


@dataclass(frozen=True)
class Installed:
    prefix: Path
    bin_dir: Path
    output: str

    @property
    def fleetgap(self) -> Path:
        return self.bin_dir / "fleetgap"


@pytest.fixture(scope="session")
def kit_links(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """.ci/wheels (the dependencies, fetched by .ci/run) and fleetgap's wheel from this source."""
    wheels = sorted(w for w in WHEELS.glob("*.whl") if not w.name.startswith("fleetgap-"))
    assert wheels, f"{WHEELS} holds no wheels: run `python tests/bundle/kit_wheels.py` (.ci/run)"
    folder = tmp_path_factory.mktemp("kit-links")
    for wheel in wheels:
        shutil.copy(wheel, folder)
    build_own_wheel(folder)
    return folder


@pytest.fixture(scope="session")
def kit(tmp_path_factory: pytest.TempPathFactory, kit_links: Path) -> Kit:
    work = tmp_path_factory.mktemp("kit")
    signer = SecretKey(
        pysequoia.Tsk.generate("kit <kit@example.org>", cipher_suite=pysequoia.CipherSuite.RSA2k)
    )
    secret, public = work / "signer-secret.asc", work / "signer.asc"
    secret.write_text(signer.armored)
    public.write_text(signer.public_key.armored)
    tar = work / "fleetgap-kit.tar"
    done = offline(
        [sys.executable, "-m", "fleetgap", "kit", "create", "--out", tar,
         "--find-links", kit_links, "--platform", this_platform(), "--python", this_python(),
         "--sign-key", secret],
        env=source_env(),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    subprocess.run(["tar", "xf", tar], cwd=work, check=True, timeout=120)
    return Kit(tar, work / KIT_DIR, kit_links, signer, public)


@pytest.fixture(scope="session")
def installed(tmp_path_factory: pytest.TempPathFactory, kit: Kit) -> Installed:
    """`sh fleetgap-kit-<version>/install.sh --prefix … --bin-dir …`, with no network."""
    root = tmp_path_factory.mktemp("installed")
    prefix, bin_dir = root / "opt" / "fleetgap", root / "usr-local-bin"
    done = offline(
        ["sh", kit.folder / "install.sh", "--prefix", prefix, "--bin-dir", bin_dir],
        env=clean_env(),
        cwd=root,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return Installed(prefix, bin_dir, done.stdout)
