"""The kit's parts that need no install: `kit:` in a selection, what a bundle may carry under
kit/, and DATA/kit/ served as a PEP 503 index by `fleetgap serve`."""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner
from tests.bundle.conftest import entries, make_cache

from fleetgap.bundle.kit import KitTarget, check_running_python
from fleetgap.bundle.manifest import FileEntry
from fleetgap.bundle.selection import SelectionError, parse_selection
from fleetgap.bundle.writer import write_bundle
from fleetgap.cli import main
from fleetgap.errors import FleetgapError
from fleetgap.pgp.keys import parse_public_key

from serving import fleetgap_serve


def test_selection_kit_entry():
    path = Path("/srv/selections/monthly.yml")
    text = "kit:\n  platforms: [linux-x86_64, linux-arm64]\n  python: ['3.12']\n  find_links: w\n"
    kit = parse_selection(text, path).kit
    assert kit is not None
    assert kit.platforms == ("linux-x86_64", "linux-arm64") and kit.pythons == ("3.12",)
    assert kit.find_links == Path("/srv/selections/w")
    assert parse_selection("keys: []\n", path).kit is None


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("kit:\n  platforms: [windows-x86_64]\n  python: ['3.12']\n",
         "sel.yml:2: unknown kit platforms 'windows-x86_64' (known: linux-x86_64, linux-arm64)"),
        ("kit:\n  platforms: [linux-x86_64]\n",
         "sel.yml:2: kit needs python (known: 3.11, 3.12, 3.13)"),
        ("kit:\n  platforms: [linux-x86_64]\n  python: [3.9]\n",
         "sel.yml:3: unknown kit python '3.9' (known: 3.11, 3.12, 3.13)"),
        ("kit:\n  platforms: [linux-x86_64]\n  python: ['3.12']\n  index: x\n",
         "sel.yml:4: unknown key 'index' in kit (known: platforms, python, find_links)"),
    ],
)  # fmt: skip
def test_selection_kit_mistakes_name_the_line(text, error):
    with pytest.raises(SelectionError) as caught:
        parse_selection(text, Path("sel.yml"))
    assert str(caught.value) == error


def _wheel(name: str) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr(f"{name}/__init__.py", "")
    return buffer.getvalue()


def _kit_bundle(tmp_path, file_signer, bundle_signer, name: str, verified_by: str) -> Path:
    cache = make_cache(tmp_path / "cache", file_signer)
    body = _wheel("demo")
    (cache.root / "kit").mkdir()
    (cache.root / "kit" / name).write_bytes(body)
    wheel = FileEntry(f"kit/{name}", len(body), hashlib.sha256(body).hexdigest(), verified_by, None)
    known = [e for e in entries(cache, file_signer) if not e.path.startswith("kit/")]
    out = tmp_path / "kit.bundle"
    write_bundle(cache, [*known, wheel], out, selection={}, sign_key=bundle_signer)
    return out


def test_load_carries_a_wheel_under_kit(tmp_path, file_signer, bundle_signer, trust_files):
    name = "demo_pkg-1.0-py3-none-any.whl"
    bundle = _kit_bundle(tmp_path, file_signer, bundle_signer, name, "pip")
    data = tmp_path / "data"
    load = ["bundle", "load", str(bundle), "--data", str(data), "--trust-key"]
    result = CliRunner().invoke(main, [*load, str(trust_files["signer"])])
    assert result.exit_code == 0, result.output
    assert f"ok kit/{name}: wheel: SHA-256 " in result.output
    assert "as in the signed manifest" in result.output
    assert (data / "kit" / name).read_bytes() == _wheel("demo")


@pytest.mark.parametrize(
    ("name", "verified_by"),
    [("install.sh", "pip"), ("demo_pkg-1.0-py3-none-any.whl", "sidecar")],
)
def test_load_refuses_anything_but_a_pip_wheel_under_kit(
    tmp_path, file_signer, bundle_signer, trust_files, name, verified_by
):
    bundle = _kit_bundle(tmp_path, file_signer, bundle_signer, name, verified_by)
    data = tmp_path / "data"
    load = ["bundle", "load", str(bundle), "--data", str(data), "--trust-key"]
    result = CliRunner().invoke(main, [*load, str(trust_files["signer"])])
    assert result.exit_code == 1
    assert result.output.splitlines()[-1] == (
        f"error: kit/{name}: under kit/ only wheels fetched by pip may be carried "
        f"(the manifest says {verified_by!r})"
    )
    assert not (data / "kit").exists()


def test_serve_offers_data_kit_as_a_pep503_index(tmp_path):
    kit = tmp_path / "data" / "kit"
    kit.mkdir(parents=True)
    wheels = {
        "Demo_Pkg-1.0-py3-none-any.whl": _wheel("demo"),
        "other.lib-2.0-cp311-cp311-manylinux2014_x86_64.whl": _wheel("other"),
    }
    for name, body in wheels.items():
        (kit / name).write_bytes(body)
    (kit / ".Demo_Pkg-1.1-py3-none-any.whl.tmp").write_bytes(b"work in progress")
    (kit / "notes.txt").write_text("not a wheel")
    with fleetgap_serve("--data", str(tmp_path / "data"), log_dir=tmp_path) as server:
        root = httpx.get(f"{server.url}/fleetgap/simple/")
        assert root.status_code == 200 and root.headers["content-type"].startswith("text/html")
        assert 'href="demo-pkg/"' in root.text and 'href="other-lib/"' in root.text
        assert "notes" not in root.text
        # PEP 503: a name not normalized redirects to the normalized one; no slash adds it
        moved = httpx.get(f"{server.url}/fleetgap/simple/Demo_Pkg/")
        assert moved.status_code == 301
        assert moved.headers["location"].endswith("/fleetgap/simple/demo-pkg/")
        assert httpx.get(f"{server.url}/fleetgap/simple/demo-pkg").status_code in (301, 307)
        page = httpx.get(f"{server.url}/fleetgap/simple/demo-pkg/").text
        name = "Demo_Pkg-1.0-py3-none-any.whl"
        digest = hashlib.sha256(wheels[name]).hexdigest()
        assert f'<a href="../../files/{name}#sha256={digest}">{name}</a>' in page
        assert "1.1" not in page
        got = httpx.get(f"{server.url}/fleetgap/files/{name}")
        assert got.status_code == 200 and got.content == wheels[name]
        for missing in ("files/notes.txt", "files/..%2Fkit%2Fnotes.txt", "simple/absent/"):
            assert httpx.get(f"{server.url}/fleetgap/{missing}").status_code == 404, missing
        assert httpx.get(f"{server.url}/health").status_code == 200


def test_plan_names_the_kit(tmp_path, trust_files):
    key = trust_files["files"]
    fingerprint = parse_public_key(key.read_bytes()).fingerprint
    selection = tmp_path / "sel.yml"
    selection.write_text(
        f"keys:\n  - file: GPG-KEY-elastic-agent\n    source: {key}\n"
        f"    fingerprint: {fingerprint}\n"
        "kit:\n  platforms: [linux-arm64]\n  python: ['3.12', '3.13']\n"
    )
    result = CliRunner().invoke(main, ["bundle", "plan", str(selection)])
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[-1] == (
        "kit: fleetgap's wheels for linux-arm64, Python 3.12, 3.13: listed and sized when "
        "`bundle create` fetches them"
    )
    as_json = CliRunner().invoke(main, ["bundle", "plan", str(selection), "--json"])
    assert json.loads(as_json.output)["kit"] == {
        "platforms": ["linux-arm64"],
        "python": ["3.12", "3.13"],
    }


def test_a_kit_is_made_with_a_python_no_newer_than_its_oldest_target():
    target = KitTarget(("linux-x86_64",), ("3.12", "3.11"))
    check_running_python(target, (3, 11))
    check_running_python(target, (3, 10))
    with pytest.raises(FleetgapError) as caught:
        check_running_python(target, (3, 13))
    assert str(caught.value) == (
        "a kit for Python 3.11 must be made with Python 3.11 or older (pip chooses "
        "dependencies for the Python running it); this is 3.13"
    )


def test_an_unsigned_bundle_cannot_bring_wheels_for_other_hosts_to_install(
    tmp_path, file_signer, trust_files
):
    name = "demo_pkg-1.0-py3-none-any.whl"
    bundle = _kit_bundle(tmp_path, file_signer, None, name, "pip")
    data = tmp_path / "data"
    load = ["bundle", "load", str(bundle), "--data", str(data), "--allow-unsigned"]
    result = CliRunner().invoke(main, [*load, "--key", str(trust_files["files"])])
    assert result.exit_code == 1
    assert result.output.splitlines()[-1] == (
        f"error: kit/{name}: fleetgap's own wheels cross only in a signed bundle "
        "(in an unsigned one nothing vouches for them)"
    )
    assert not (data / "kit").exists()
