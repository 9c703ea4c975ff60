"""`/ui/` in real headless Chromium, against `fleetgap serve --data` holding a loaded bundle:
the coverage matrix shows a missing platform as missing, and the page is not blank."""

from __future__ import annotations

import json
import ssl
from collections import Counter
from pathlib import Path

import httpx
import pytest
from browser import Cells, browse, png_pixels

from artifacts.conftest import Upstream, rsa_key
from fleetgap.artifacts.catalogue import load_catalogue
from fleetgap.ops.status_page import StatusPage
from fleetgap.packages.index import LoadOptions, load_index
from fleetgap.registry.app import IndexHolder

from builders import write_zip_package
from closed_side import STACK

SEQUENCE = 1764745200


@pytest.fixture(scope="module")
def loaded(closed_side):
    """The closed side with a bundle's receipt (the bundle contract's format) and one
    binary whose signature no key in DATA/keys verifies."""
    receipts = closed_side.data / "state" / "receipts"
    receipts.mkdir(parents=True, exist_ok=True)
    bundle_id = "5f0c2a8e9b7d4e61a3c2b1d0e9f8a7b6"
    receipt = receipts / f"{SEQUENCE:012d}-{bundle_id}.json"
    receipt.write_text(
        json.dumps(
            {
                "bundle_id": bundle_id,
                "sequence": SEQUENCE,
                "created": "2026-12-03T06:00:00Z",
                "loaded_at": "2026-12-03T07:00:00Z",
                "fleetgap_version": "0.1.0",
                "delta": False,
                "signer": None,
                "files": [{"path": "keys/GPG-KEY-elastic-agent", "sha256": "0" * 64, "size": 1}],
            }
        )
    )
    (artifact,) = load_catalogue().select(STACK, ["fleet-server"], ["darwin-x86_64"], ["tar.gz"])
    stranger = rsa_key("not trusted <stranger@test.invalid>")
    publisher = Upstream(closed_side.data / "downloads", recorder=None, server=None)  # type: ignore[arg-type]
    binary = publisher.publish(artifact.path, b"unverified bytes\n", stranger)
    yield closed_side
    receipt.unlink()
    for path in (binary, *(binary.with_name(binary.name + s) for s in (".sha512", ".asc"))):
        path.unlink()


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
