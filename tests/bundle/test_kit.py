"""The offline kit of fleetgap itself: `kit create`, install.sh, and the kit crossing in a
bundle to be served as a pip index at /fleetgap/simple/ — all where there is no network."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

from bundle.kit_wheels import this_platform, this_python
from fleetgap import __version__
from kit_setup import KIT_DIR, Installed, Kit, clean_env, offline, source_env

from serving import free_port


def test_kit_create_holds_every_wheel_install_sh_and_signed_sums(kit: Kit, tmp_path: Path):
    with tarfile.open(kit.tar) as tar:
        members = {m.name: m for m in tar.getmembers()}
    assert all(name == KIT_DIR or name.startswith(f"{KIT_DIR}/") for name in members)
    assert members[f"{KIT_DIR}/install.sh"].mode & 0o111
    wheels = sorted(p.name for p in (kit.folder / "wheels").iterdir())
    # fleetgap, every dependency for this platform and Python, and pip: all that was offered
    assert wheels == sorted(p.name for p in kit.links.iterdir())
    assert any(w.startswith(f"fleetgap-{__version__}-") for w in wheels)
    for project in ("starlette", "pysequoia", "cryptography", "granian", "pip"):
        assert any(w.startswith(f"{project}-") for w in wheels), project
    # coreutils' sha256sum as the oracle for SHA256SUMS
    check = subprocess.run(
        ["sha256sum", "--check", "--strict", "SHA256SUMS"],
        cwd=kit.folder, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert check.returncode == 0, check.stdout + check.stderr
    listed = {
        line.split("  ", 1)[1] for line in (kit.folder / "SHA256SUMS").read_text().splitlines()
    }
    assert listed == {"install.sh"} | {f"wheels/{w}" for w in wheels}
    # gnupg as the oracle for the detached signature
    home = tmp_path / "gnupg"
    home.mkdir(mode=0o700)
    gpg = ["gpg", "--homedir", str(home), "--batch", "--status-fd", "1"]
    subprocess.run([*gpg, "--import", str(kit.signer_public)], check=True, capture_output=True)
    verified = subprocess.run(
        [*gpg, "--verify", "SHA256SUMS.asc", "SHA256SUMS"],
        cwd=kit.folder, capture_output=True, text=True, errors="replace", timeout=60,
    )  # fmt: skip
    assert verified.returncode == 0, verified.stderr
    (valid,) = [line for line in verified.stdout.splitlines() if " VALIDSIG " in line]
    assert valid.split()[-1] == kit.signer.fingerprint  # the primary key's fingerprint


def test_kit_create_without_the_wheels_is_one_error_line(tmp_path: Path):
    empty = tmp_path / "mirror"
    empty.mkdir()
    out = tmp_path / "kit.tar"
    done = offline(
        [sys.executable, "-m", "fleetgap", "kit", "create", "--out", out, "--find-links", empty,
         "--python", this_python()],
        env=source_env(),
    )  # fmt: skip
    assert done.returncode == 1
    (line,) = done.stderr.splitlines()
    assert line.startswith("error: pip download for ") and f"from {empty} only" in line
    assert not out.exists() and list(tmp_path.iterdir()) == [empty]


def test_kit_create_without_fleetgaps_own_wheel_says_how_to_make_it(kit: Kit, tmp_path: Path):
    """A site mirror (or an index) holds the dependencies but not fleetgap itself, which an
    operator installed from its source (`pip install .`): pip's bare 'Could not find a
    version that satisfies the requirement fleetgap==V' left them stuck."""
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    for wheel in kit.links.iterdir():
        if not wheel.name.startswith("fleetgap-"):
            shutil.copy(wheel, mirror)
    done = offline(
        [sys.executable, "-m", "fleetgap", "kit", "create", "--out", tmp_path / "kit.tar",
         "--find-links", mirror, "--python", this_python()],
        env=source_env(),
    )  # fmt: skip
    assert done.returncode == 1
    (line,) = done.stderr.splitlines()
    assert f"fleetgap=={__version__}" in line
    assert "pip wheel --no-deps" in line and "--find-links" in line, line


# An index on loopback (fleetgap serve's /fleetgap/simple/ of the same wheels), and `kit
# create` fetching from it through pip's own index settings, in one network namespace.
FROM_AN_INDEX = r"""
set -eu
python -m fleetgap serve --data "$DATA" -address "127.0.0.1:$PORT" >serve.log 2>&1 &
server=$!
trap 'kill $server; wait $server || true' EXIT
python -c '
import sys, time, urllib.request
deadline = time.monotonic() + 60
while True:
    try:
        urllib.request.urlopen("http://127.0.0.1:'"$PORT"'/health", timeout=2)
        break
    except OSError:
        if time.monotonic() > deadline:
            sys.exit("no /health")
        time.sleep(0.2)
'
PIP_INDEX_URL="http://127.0.0.1:$PORT/fleetgap/simple/" python -m fleetgap kit create \
    --out "$OUT" --platform "$PLATFORM" --python "$PYTHON"
"""


def test_kit_create_fetches_from_an_index_as_pip_does(kit: Kit, tmp_path: Path):
    (tmp_path / "data" / "kit").mkdir(parents=True)
    for wheel in kit.links.iterdir():
        shutil.copy(wheel, tmp_path / "data" / "kit")
    out = tmp_path / "from-index.tar"
    env = source_env() | {
        "DATA": str(tmp_path / "data"), "PORT": str(free_port()), "OUT": str(out),
        "PLATFORM": this_platform(), "PYTHON": this_python(),
        "PIP_CONFIG_FILE": os.devnull, "PIP_NO_CACHE_DIR": "1",
    }  # fmt: skip
    done = offline(["sh", "-c", FROM_AN_INDEX], env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr + _log(tmp_path / "serve.log")
    with tarfile.open(out) as tar:
        wheels = sorted(
            Path(name).name for name in tar.getnames() if name.startswith(f"{KIT_DIR}/wheels/")
        )
    assert wheels == sorted(p.name for p in kit.links.iterdir())


def _copy_kit(kit: Kit, tmp_path: Path) -> Path:
    copy = tmp_path / KIT_DIR
    shutil.copytree(kit.folder, copy)
    return copy


def _install(folder: Path, root: Path) -> subprocess.CompletedProcess[str]:
    return offline(
        ["sh", folder / "install.sh", "--prefix", root / "opt", "--bin-dir", root / "bin"],
        env=clean_env(),
        cwd=root,
    )


def test_install_sh_refuses_a_changed_wheel_and_installs_nothing(kit: Kit, tmp_path: Path):
    folder = _copy_kit(kit, tmp_path)
    wheel = next((folder / "wheels").glob("starlette-*.whl"))
    data = bytearray(wheel.read_bytes())
    data[len(data) // 2] ^= 0x01
    wheel.write_bytes(bytes(data))
    done = _install(folder, tmp_path)
    assert done.returncode != 0
    assert done.stderr.splitlines() == [
        f"install.sh: checksum mismatch: wheels/{wheel.name}; nothing installed"
    ]
    assert not (tmp_path / "opt").exists() and not (tmp_path / "bin").exists()


def test_install_sh_refuses_a_wheel_not_in_the_sums(kit: Kit, tmp_path: Path):
    folder = _copy_kit(kit, tmp_path)
    planted = folder / "wheels" / "evil-1.0-py3-none-any.whl"
    planted.write_bytes(b"PK\x05\x06" + bytes(18))
    done = _install(folder, tmp_path)
    assert done.returncode != 0
    assert done.stderr.splitlines() == [
        f"install.sh: wheels/{planted.name} is not in SHA256SUMS; nothing installed"
    ]
    assert not (tmp_path / "opt").exists()


def test_install_sh_without_its_wheels_folder_is_one_line(kit: Kit, tmp_path: Path):
    folder = _copy_kit(kit, tmp_path)
    shutil.rmtree(folder / "wheels")
    done = _install(folder, tmp_path)
    assert done.returncode != 0
    assert done.stderr.splitlines() == [
        "install.sh: cannot read wheels/: No such file or directory; nothing installed"
    ]


def test_install_sh_under_a_restrictive_umask_leaves_the_venv_usable_by_the_service_user(
    kit: Kit, tmp_path: Path
):
    """Hardened hosts (CIS) give root umask 027 or 077: the venv then was 0750 root:root and
    the systemd unit's `User=fleetgap` got 'Permission denied' on /opt/fleetgap/bin/fleetgap."""
    folder = _copy_kit(kit, tmp_path)
    done = offline(
        ["sh", "-c", 'umask 077 && exec sh "$0" "$@"', folder / "install.sh",
         "--prefix", tmp_path / "opt", "--bin-dir", tmp_path / "bin"],
        env=clean_env(),
        cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    package = next((tmp_path / "opt" / "lib").glob("python*/site-packages/fleetgap"))
    for path in (tmp_path / "opt", tmp_path / "opt" / "bin", package):
        assert path.stat().st_mode & 0o005 == 0o005, f"{path}: {oct(path.stat().st_mode)}"
    for path in (tmp_path / "opt" / "bin" / "fleetgap", package / "__init__.py"):
        assert path.stat().st_mode & 0o004, f"{path}: {oct(path.stat().st_mode)}"


def test_install_sh_help_is_its_header_only(kit: Kit, tmp_path: Path):
    done = offline(["sh", kit.folder / "install.sh", "--help"], env=clean_env(), cwd=tmp_path)
    assert done.returncode == 0
    lines = done.stdout.splitlines()
    assert lines[0].startswith("# Install fleetgap ")
    assert all(line.startswith("#") for line in lines), lines[-1]  # was: "set -eu"


def test_installed_kit_puts_fleetgap_on_the_path(installed: Installed):
    assert installed.fleetgap.is_symlink()
    assert installed.fleetgap.resolve() == (installed.prefix / "bin" / "fleetgap").resolve()
    done = subprocess.run(
        [str(installed.fleetgap), "--version"], env=clean_env(), capture_output=True, text=True
    )
    assert done.stdout.strip() == f"fleetgap, version {__version__}"
    where = subprocess.run(
        [installed.prefix / "bin" / "python", "-c", "import fleetgap; print(fleetgap.__file__)"],
        env=clean_env(), capture_output=True, text=True,
    )  # fmt: skip
    assert Path(where.stdout.strip()).is_relative_to(installed.prefix)


# Everything on the closed side in one network namespace: load the bundle with the installed
# fleetgap, serve it, and install fleetgap from the served index with pip.
CLOSED_SIDE = r"""
set -eu
fleetgap bundle load "$BUNDLE" --data "$DATA" --trust-key "$TRUST"
fleetgap serve --data "$DATA" -address "127.0.0.1:$PORT" >"$WORK/serve.log" 2>&1 &
server=$!
trap 'kill $server; wait $server || true' EXIT
"$VENV/bin/python" - "$PORT" <<'WAIT'
import sys, time, urllib.request
deadline = time.monotonic() + 60
while True:
    try:
        urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/health", timeout=2)
        break
    except OSError:
        if time.monotonic() > deadline:
            sys.exit("no /health")
        time.sleep(0.2)
for page in ("", "fleetgap/"):
    body = urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/fleetgap/simple/{page}").read()
    open(f"index-{page.strip('/') or 'root'}.html", "wb").write(body)
WAIT
"$VENV/bin/python" -m pip install --no-cache-dir --disable-pip-version-check --quiet \
    --index-url "http://127.0.0.1:$PORT/fleetgap/simple/" --target "$WORK/target" fleetgap
"""


def test_kit_crosses_in_a_bundle_and_is_served_as_a_pip_index(
    kit: Kit, installed: Installed, tmp_path: Path
):
    agent_key = tmp_path / "agent.asc"
    agent_key.write_text(kit.signer.public_key.armored)
    selection = tmp_path / "selection.yml"
    selection.write_text(
        "keys:\n"
        "  - file: GPG-KEY-elastic-agent\n"
        "    source: ./agent.asc\n"
        f"    fingerprint: {kit.signer.fingerprint}\n"
        "kit:\n"
        f"  platforms: [{this_platform()}]\n"
        f'  python: ["{this_python()}"]\n'
        f"  find_links: {kit.links}\n"
    )
    bundle = tmp_path / "monthly.bundle"
    secret = tmp_path / "signer-secret.asc"
    secret.write_text(kit.signer.armored)
    created = offline(
        [sys.executable, "-m", "fleetgap", "bundle", "create", selection, "--out", bundle,
         "--cache", tmp_path / "cache", "--sign-key", secret],
        env=source_env(), cwd=tmp_path,
    )  # fmt: skip
    assert created.returncode == 0, created.stderr
    wheels = {p.name: _sha256(p) for p in kit.links.iterdir()}
    assert f"kit: {len(wheels)} wheels of fleetgap {__version__} and its dependencies" in (
        created.stdout.splitlines()
    )
    data, work = tmp_path / "data", tmp_path / "closed"
    work.mkdir()
    env = clean_env() | {
        "PATH": f"{installed.bin_dir}{os.pathsep}{os.environ['PATH']}",
        "BUNDLE": str(bundle), "DATA": str(data), "TRUST": str(kit.signer_public),
        "PORT": str(free_port()), "WORK": str(work), "VENV": str(installed.prefix),
    }  # fmt: skip
    done = offline(["sh", "-c", CLOSED_SIDE], env=env, cwd=work)
    assert done.returncode == 0, done.stdout + done.stderr + _log(work / "serve.log")
    # bundle load put exactly the kit's wheels under DATA/kit/, each checked
    assert {p.name: _sha256(p) for p in (data / "kit").iterdir()} == wheels
    for name in wheels:
        assert f"ok kit/{name}: wheel: SHA-256 {wheels[name]}" in done.stdout
    # the index: every project, and each wheel with its SHA-256 for pip to check
    root = (work / "index-root.html").read_text()
    assert re.findall(r'href="([^"]+)"', root) == sorted(
        {re.sub(r"[-_.]+", "-", name.split("-", 1)[0]).lower() + "/" for name in wheels}
    )
    page = (work / "index-fleetgap.html").read_text()
    (own,) = [name for name in wheels if name.startswith("fleetgap-")]
    assert f'href="../../files/{own}#sha256={wheels[own]}"' in page
    # pip installed fleetgap and its dependencies from the served index alone
    installed_here = work / "target"
    assert (installed_here / "fleetgap" / "__init__.py").is_file()
    assert (installed_here / "starlette").is_dir() and (installed_here / "pysequoia").exists()


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _log(path: Path) -> str:
    return path.read_text(errors="replace") if path.exists() else ""
