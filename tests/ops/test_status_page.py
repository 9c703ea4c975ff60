"""`/ui/` in real headless Chromium, against `fleetgap serve --data` holding a loaded bundle:
the coverage matrix shows a missing platform as missing, and the page is not blank."""

from __future__ import annotations

import hashlib
import ssl
import subprocess
import sys
from collections import Counter
from pathlib import Path

import httpx
import pytest
from browser import Cells, browse, png_pixels

from artifacts.conftest import Upstream, rsa_key
from fleetgap.artifacts.catalogue import load_catalogue
from fleetgap.bundle.manifest import FileEntry
from fleetgap.bundle.writer import write_bundle
from fleetgap.ops.status_page import StatusPage
from fleetgap.packages.index import LoadOptions, load_index
from fleetgap.registry.holder import IndexHolder
from fleetgap.store import DataDir

from builders import write_zip_package
from closed_side import STACK

SEQUENCE = 1764745200


@pytest.fixture(scope="module")
def loaded(closed_side, tmp_path_factory):
    """The closed side after a real `fleetgap bundle load` of one more platform's agent
    (darwin-x86_64), plus one binary whose signature no key in DATA/keys verifies."""
    work = tmp_path_factory.mktemp("bundle")
    cache = DataDir(work / "cache").ensure()
    (carried,) = load_catalogue().select(STACK, ["elastic-agent"], ["darwin-x86_64"], ["tar.gz"])
    publisher = Upstream(cache.downloads, recorder=None, server=None)  # type: ignore[arg-type]
    publisher.publish(carried.path, b"agent for darwin-x86_64\n", closed_side.key)
    entries = [
        FileEntry(
            path.relative_to(cache.root).as_posix(),
            path.stat().st_size,
            hashlib.sha256(path.read_bytes()).hexdigest(),
            "sidecar" if path.suffix in (".sha512", ".asc") else "sha512+openpgp-detached",
            None if path.suffix in (".sha512", ".asc") else closed_side.key.fingerprint,
        )
        for path in sorted(cache.downloads.rglob("*"))
        if path.is_file()
    ]
    # what the operator asked for: the matrix greys out what no loaded selection asks for
    asked = {"artifacts": [{"versions": [STACK], "products": ["elastic-agent", "fleet-server"]}]}
    summary = write_bundle(cache, entries, work / "agents.tar", selection=asked, sequence=SEQUENCE)
    key_file = work / "key.asc"
    key_file.write_text(closed_side.key.public_key.armored)
    command = [sys.executable, "-m", "fleetgap", "bundle", "load", str(work / "agents.tar")]
    command += ["--data", str(closed_side.data), "--allow-unsigned", "--key", str(key_file)]
    subprocess.run(command, check=True, capture_output=True)
    (artifact,) = load_catalogue().select(STACK, ["fleet-server"], ["darwin-x86_64"], ["tar.gz"])
    stranger = rsa_key("not trusted <stranger@test.invalid>")
    publisher = Upstream(closed_side.data / "downloads", recorder=None, server=None)  # type: ignore[arg-type]
    binary = publisher.publish(artifact.path, b"unverified bytes\n", stranger)
    yield closed_side
    # the other tests of the session expect the closed side as it was
    brought = [closed_side.data / e.path for e in entries] + [binary]
    receipts = closed_side.data / "state" / "receipts"
    brought += list(receipts.glob(f"*-{summary.bundle_id}.json"))
    for path in brought:
        for each in (
            path,
            path.with_name(path.name + ".sha512"),
            path.with_name(path.name + ".asc"),
        ):
            each.unlink(missing_ok=True)


def cells(html: str) -> dict[tuple[str, str, str], str]:
    parser = Cells()
    parser.feed(html)
    return {
        (a["data-version"], a["data-product"], a["data-platform"]): text.strip()
        for tag, a, text in parser.found
        if tag == "td" and "data-platform" in a
    }


def test_matrix_bundles_packages_and_keys_in_chromium(loaded, tmp_path):
    url = loaded.url + "/ui/"
    dom = browse(url, tmp_path / "profile", loaded.tls_dir / "server.crt", "--dump-dom").stdout
    matrix = cells(dom)
    assert matrix[(STACK, "elastic-agent", "linux-x86_64")] == "complete"
    assert matrix[(STACK, "elastic-agent", "darwin-x86_64")] == "complete"  # the bundle's
    assert matrix[(STACK, "elastic-agent", "linux-arm64")] == "missing"
    assert matrix[(STACK, "elastic-agent", "darwin-aarch64")] == "missing"
    assert matrix[(STACK, "fleet-server", "darwin-x86_64")] == "unverified"
    assert matrix[(STACK, "fleet-server", "windows-arm64")] == "n/a"
    assert f'data-sequence="{SEQUENCE}"' in dom
    fingerprint = loaded.key.public_key.fingerprint
    assert fingerprint in dom
    parser = Cells()
    parser.feed(dom)
    signatures = {
        a["data-name"]: text.split()[-1]
        for tag, a, text in parser.found
        if tag == "tr" and "data-name" in a
    }
    assert signatures == {
        "elastic_agent": "verified",
        "fleet_server": "verified",
        "nginx": "verified",
        "system": "verified",
    }


def test_screenshot_is_not_blank(loaded, tmp_path):
    shot = tmp_path / "status.png"
    browse(
        loaded.url + "/ui/",
        tmp_path / "profile",
        loaded.tls_dir / "server.crt",
        f"--screenshot={shot}",
        "--window-size=1200,900",
    )
    width, height, rows = png_pixels(shot)
    assert (width, height) == (1200, 900)
    step = len(rows[0]) // width
    colours = Counter(
        bytes(row[x * step : x * step + 3]) for row in rows[::9] for x in range(0, width, 3)
    )
    # a blank (or error) page is one or two colours; this one has text and the matrix's
    # green, red and amber cells
    assert len(colours) > 50
    assert colours.most_common(1)[0][1] < 0.9 * sum(colours.values())
    assert any(g > r + 40 and g > b + 20 for r, g, b in colours)  # a green "complete" cell
    assert any(r > g + 40 and r > b + 40 for r, g, b in colours)  # a red "missing" cell


def test_ui_redirects_and_unknown_paths(closed_side):
    context = ssl.create_default_context(cafile=str(closed_side.ca_cert))
    with httpx.Client(verify=context) as client:
        moved = client.get(closed_side.url + "/ui")
        assert moved.status_code == 301 and moved.headers["location"].endswith("/ui/")
        assert client.get(closed_side.url + "/ui/nothing").status_code == 404
        page = client.get(closed_side.url + "/ui/")
    assert page.headers["content-type"].startswith("text/html")
    # renders inside the closed network: no script, no stylesheet or image to fetch
    for marker in ("<script", "<link", "src=", "url("):
        assert marker not in page.text


def test_ci_installs_chromium():
    ci = (Path(__file__).parents[2] / ".ci" / "run").read_text()
    apt_line = next(line for line in ci.splitlines() if "apt-get install" in line)
    following = ci[ci.index(apt_line) :].split(">/dev/null", 1)[0]
    assert " chromium" in following


def test_refused_packages_and_unreadable_receipts_are_shown(tmp_path):
    packages = tmp_path / "packages"
    write_zip_package(packages, "unsigned_one", "1.0.0")  # no .sig: the index refuses it
    index = load_index(LoadOptions(paths=(packages,), require_signatures=True))
    assert len(index.refused) == 1
    receipts = tmp_path / "state" / "receipts"
    receipts.mkdir(parents=True)
    (receipts / "000000000001-x.json").write_text("[]")
    html = StatusPage(IndexHolder(index), tmp_path).render()
    assert "unsigned_one-1.0.0.zip" in html and "Refused by the index" in html
    assert "unreadable receipt" in html
    assert "No agent binaries under DATA/downloads." in html


def test_defend_rows_show_manifest_version_loaded_and_completeness(tmp_path):
    import json
    import re

    from defend_upstream import ONLY_91, ONLY_819, SHARED, artifact_url, publish

    publish(tmp_path, "9.1.0", "1.0.300", {**SHARED, **ONLY_91})
    publish(tmp_path, "8.19.4", "1.0.299", {**SHARED, **ONLY_819})
    (tmp_path / artifact_url("production-rules-linux-v1-819").lstrip("/")).unlink()
    manifest = "downloads/endpoint/manifest/artifacts-9.1.0.zip"
    digest = hashlib.sha256((tmp_path / manifest).read_bytes()).hexdigest()
    receipts = tmp_path / "state" / "receipts"
    receipts.mkdir(parents=True)
    receipt = {
        "bundle_id": "a" * 32, "sequence": 7, "loaded_at": "2026-12-01T10:00:00Z",
        "files": [{"path": manifest, "sha256": digest, "size": 1}],
    }  # fmt: skip
    (receipts / f"000000000007-{'a' * 32}.json").write_text(json.dumps(receipt))
    index = load_index(LoadOptions(paths=(tmp_path / "packages",)))
    html = StatusPage(IndexHolder(index), tmp_path, budget=30).render()
    rows = {
        version: re.sub(r"<[^>]+>", " ", body).split()
        for version, body in re.findall(r'<tr class="defend" data-version="([^"]+)">(.*?)</tr>',
                                        html, re.S)
    }  # fmt: skip
    assert rows["9.1.0"] == ["9.1.0", "1.0.300", "2026-12-01T10:00:00Z", "(bundle", "7)",
                             "complete"]  # fmt: skip
    assert rows["8.19.4"][:2] == ["8.19.4", "1.0.299"]
    assert rows["8.19.4"][-1] == "incomplete" and "not brought by a loaded bundle" in html
    assert "production-rules-linux-v1-819 missing" in html
