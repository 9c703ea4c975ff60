"""The offline kit of fleetgap itself: its wheels and every dependency's, for the closed side.

    fleetgap-kit-<version>/
      install.sh       checks every checksum, then a venv with `pip install --no-index`
      SHA256SUMS       `sha256sum` format: install.sh and every wheel
      SHA256SUMS.asc   with a signing key: its detached OpenPGP signature
      wheels/          binary wheels for every platform and Python asked, side by side

The wheels are fetched by pip itself (`pip download --only-binary=:all:` with the target's
platform tags), from the index pip is configured for or, with `find_links`, from that folder
only. The kit carries pip's own wheel, so install.sh needs no pip (nor Debian's python3-venv)
on the closed side: `python3 -m venv --without-pip`, then pip run from its wheel.

A selection's `kit:` entry puts the same wheels in a bundle under DATA/kit/, which `fleetgap
serve` offers as a PEP 503 index at /fleetgap/simple/ (serving/kit_index.py).
"""

from __future__ import annotations

import hashlib
import io
import os
import subprocess
import sys
import tarfile
import tempfile
import time
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from fleetgap import __version__
from fleetgap.errors import FleetgapError
from fleetgap.net import NetOptions
from fleetgap.pgp.keys import SecretKey
from fleetgap.pgp.signatures import sign_bytes

# The glibc floor is 2.28 (RHEL 8, Debian 10): a wheel built for a newer glibc is not taken.
PLATFORM_TAGS: dict[str, tuple[str, ...]] = {
    "linux-x86_64": tuple(
        f"{tag}_x86_64"
        for tag in (
            "manylinux_2_28",
            "manylinux_2_17",
            "manylinux2014",
            "manylinux_2_5",
            "manylinux1",
            "linux",
        )
    ),  # fmt: skip
    "linux-arm64": tuple(
        f"{tag}_aarch64" for tag in ("manylinux_2_28", "manylinux_2_17", "manylinux2014", "linux")
    ),
}
PYTHONS = ("3.11", "3.12", "3.13")
PIP_TIMEOUT_SECONDS = 30 * 60  # one `pip download` (one platform and Python), all of it
SUMS, SIGNATURE, INSTALLER, WHEELS = "SHA256SUMS", "SHA256SUMS.asc", "install.sh", "wheels"


@dataclass(frozen=True)
class KitTarget:
    platforms: tuple[str, ...]
    pythons: tuple[str, ...]

    def __post_init__(self) -> None:
        for platform in self.platforms:
            if platform not in PLATFORM_TAGS:
                raise FleetgapError(
                    f"unknown kit platform {platform!r} (known: {', '.join(PLATFORM_TAGS)})"
                )
        for python in self.pythons:
            if python not in PYTHONS:
                raise FleetgapError(f"unknown kit python {python!r} (known: {', '.join(PYTHONS)})")


def kit_name(version: str = __version__) -> str:
    return f"fleetgap-kit-{version}"


def create_kit(
    out: Path,
    target: KitTarget,
    *,
    find_links: Path | None = None,
    sign_key: SecretKey | None = None,
    net_options: NetOptions | None = None,
) -> list[str]:
    """Write the kit tar to `out` (atomically); returns the wheel names it holds."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".kit-", dir=out.parent) as work:
        wheels = Path(work) / WHEELS
        names = download_wheels(
            wheels, target, find_links=find_links, index=find_links is None, net_options=net_options
        )
        installer = install_script(target).encode()
        sums = sha256sums({INSTALLER: installer} | {f"{WHEELS}/{n}": wheels / n for n in names})
        members: list[tuple[str, bytes | Path, int]] = [
            (INSTALLER, installer, 0o755),
            (SUMS, sums, 0o644),
        ]
        if sign_key is not None:
            members.append((SIGNATURE, sign_bytes(sums, sign_key), 0o644))
        members += [(f"{WHEELS}/{name}", wheels / name, 0o644) for name in names]
        tmp = Path(work) / "kit.tar"
        _write_tar(tmp, kit_name(), members)
        os.replace(tmp, out)
    return names


def download_wheels(
    dest: Path,
    target: KitTarget,
    *,
    find_links: Path | None = None,
    index: bool = True,
    net_options: NetOptions | None = None,
) -> list[str]:
    """pip downloads fleetgap (this version), its dependencies and pip into `dest`, binary
    wheels only, once per platform and Python; returns the wheel names, sorted."""
    check_running_python(target)
    dest.mkdir(parents=True, exist_ok=True)
    for platform in target.platforms:
        for python in target.pythons:
            _pip_download(dest, platform, python, find_links, index, net_options)
    names = sorted(p.name for p in dest.iterdir() if p.is_file())
    stray = [n for n in names if not n.endswith(".whl")]
    if stray:  # --only-binary should make this impossible; a kit never builds from source
        raise FleetgapError(f"pip fetched something other than a wheel: {stray[0]}")
    return names


def check_running_python(target: KitTarget, running: tuple[int, int] | None = None) -> None:
    """pip evaluates dependency markers (`python_version < "3.13"`) for the Python running
    it, not for `--python-version`: run on a newer one, it would leave out what an older
    target needs, and the kit would fail only on the closed side. So: no newer than the
    oldest target."""
    running = running or (sys.version_info[0], sys.version_info[1])
    oldest = min(target.pythons, key=lambda v: tuple(int(p) for p in v.split(".")))
    if running > tuple(int(p) for p in oldest.split(".")):
        raise FleetgapError(
            f"a kit for Python {oldest} must be made with Python {oldest} or older (pip "
            f"chooses dependencies for the Python running it); this is {running[0]}.{running[1]}"
        )


def pip_download_command(
    dest: Path, platform: str, python: str, find_links: Path | None, index: bool
) -> list[str]:
    abi = "cp" + python.replace(".", "")
    command = [
        sys.executable, "-m", "pip", "download", "--disable-pip-version-check", "--no-input",
        "--only-binary=:all:", "--dest", str(dest), "--python-version", python,
        "--implementation", "cp", "--abi", abi, "--abi", "abi3", "--abi", "none",
    ]  # fmt: skip
    command += [f"--platform={tag}" for tag in PLATFORM_TAGS[platform]]
    if not index:
        command.append("--no-index")
    if find_links is not None:
        command += ["--find-links", str(find_links)]
    return [*command, f"fleetgap=={__version__}", "pip"]


def sha256sums(files: dict[str, bytes | Path]) -> bytes:
    """`sha256sum` lines (two spaces, then the path), sorted by path."""
    lines = []
    for name in sorted(files):
        content = files[name]
        digest = hashlib.sha256(content) if isinstance(content, bytes) else _file_digest(content)
        lines.append(f"{digest.hexdigest()}  {name}\n")
    return "".join(lines).encode()


def install_script(target: KitTarget, version: str = __version__) -> str:
    template = resources.files("fleetgap.bundle").joinpath("kit_install.sh").read_text()
    return template.replace("@VERSION@", version).replace("@PYTHONS@", " ".join(target.pythons))


def _pip_download(
    dest: Path,
    platform: str,
    python: str,
    find_links: Path | None,
    index: bool,
    net_options: NetOptions | None,
) -> None:
    command = pip_download_command(dest, platform, python, find_links, index)
    env = dict(os.environ)
    # pip reads these itself; in the environment, a proxy's password is not in `ps` output
    if net_options is not None and net_options.proxy:
        env["PIP_PROXY"] = net_options.proxy
    if net_options is not None and net_options.ca_cert:
        env["PIP_CERT"] = str(net_options.ca_cert)
    try:
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=PIP_TIMEOUT_SECONDS, check=False,
            env=env,
        )  # fmt: skip
    except subprocess.TimeoutExpired:
        raise FleetgapError(
            f"pip download for {platform} Python {python} took more than "
            f"{PIP_TIMEOUT_SECONDS // 60} minutes; stopped"
        ) from None
    if done.returncode != 0:
        errors = [line for line in done.stderr.splitlines() if line.startswith("ERROR:")]
        last = (errors or done.stderr.strip().splitlines() or ["no output"])[0]
        where = f" (from {find_links} only)" if not index else ""
        hint = ""
        if f"fleetgap=={__version__}" in last:  # the dependencies are there, fleetgap is not
            hint = (
                f"; fleetgap {__version__} itself is not there: build its wheel from the "
                "source you installed (`pip wheel --no-deps -w DIR SOURCE`) and give "
                "--find-links DIR (with the other wheels) or add it to the mirror"
            )
        raise FleetgapError(
            f"pip download for {platform} Python {python}{where} failed: {_printable(last)}" + hint
        )


def _printable(text: str) -> str:
    return "".join(c if c.isprintable() else "?" for c in text)[:400]


def _file_digest(path: Path):  # type: ignore[no-untyped-def]
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256")


def _write_tar(path: Path, folder: str, members: list[tuple[str, bytes | Path, int]]) -> None:
    now = int(time.time())
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tar:
        top = tarfile.TarInfo(folder)
        top.type, top.mode, top.mtime = tarfile.DIRTYPE, 0o755, now
        tar.addfile(top)
        wheels = tarfile.TarInfo(f"{folder}/{WHEELS}")
        wheels.type, wheels.mode, wheels.mtime = tarfile.DIRTYPE, 0o755, now
        tar.addfile(wheels)
        for name, content, mode in members:
            info = tarfile.TarInfo(f"{folder}/{name}")
            info.mode, info.mtime = mode, now
            if isinstance(content, bytes):
                info.size = len(content)
                tar.addfile(info, io.BytesIO(content))
            else:
                info.size = content.stat().st_size
                with open(content, "rb") as handle:
                    tar.addfile(info, handle)
        tar.fileobj.flush()  # type: ignore[union-attr]
        os.fsync(tar.fileobj.fileno())  # type: ignore[union-attr]
