"""`/ui/` and package documents (issue 17, item 17): a Content-Security-Policy and nosniff on
`/ui/`, a sandboxing policy on SVG and HTML package files, the page rendered once per index
or load and showing no absolute server path, and a package whose `.sig` is not a
signature shown as refused instead of a 500."""

from __future__ import annotations

import base64
import hashlib
import re
import time
import zipfile

import httpx
import pytest

from artifacts.conftest import rsa_key

from builders import package_files, write_zip_package
from serving import fleetgap_serve

SVG = b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>\n'
AGENT = "elastic-agent-9.1.0-linux-x86_64.tar.gz"
HTML = b"<html><body><script>alert(1)</script></body></html>\n"


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory):
    data = tmp_path_factory.mktemp("status-data")
    packages = data / "packages"
    packages.mkdir()
    with zipfile.ZipFile(packages / "badsig-1.0.0.zip", "w", zipfile.ZIP_DEFLATED) as archive:
        for relative, text in package_files("badsig", "1.0.0").items():
            archive.writestr(f"badsig-1.0.0/{relative}", text)
        archive.writestr("badsig-1.0.0/img/icon.svg", SVG)
        archive.writestr("badsig-1.0.0/docs/page.html", HTML)
        archive.writestr("badsig-1.0.0/img/logo.png", b"\x89PNG\r\n\x1a\nnot really")
    (packages / "badsig-1.0.0.zip.sig").write_text("this is not a signature\n")
    write_zip_package(packages, "nosig", "1.0.0")  # no .sig: the index refuses it
    (data / "keys").mkdir()
    key = rsa_key("status test <status@test.invalid>")
    (data / "keys" / "GPG-KEY-elastic-agent").write_text(key.public_key.armored)
    outside = tmp_path_factory.mktemp("outside")
    (outside / "stray.asc").write_text(key.public_key.armored)
    (outside / "agent.tar.gz").write_bytes(b"an agent outside DATA")
    (data / "keys" / "stray.asc").symlink_to(outside / "stray.asc")
    agents = data / "downloads" / "beats" / "elastic-agent"
    agents.mkdir(parents=True)
    (agents / AGENT).symlink_to(outside / "agent.tar.gz")
    (data / "state").mkdir()
    (data / "state" / "generation").write_text("1 first\n")
    with fleetgap_serve("--data", str(data), cwd=data, log_dir=data) as running:
        yield data, running.url


def test_a_sig_that_is_not_a_signature_shows_as_refused(served) -> None:
    _, url = served
    response = httpx.get(url + "/ui/")
    assert response.status_code == 200
    row = re.search(r'<tr class="package" data-name="badsig".*?</tr>', response.text, re.S)
    assert row is not None
    assert 'class="state refused"' in row.group(0)


def test_ui_has_a_content_security_policy_and_nosniff(served) -> None:
    _, url = served
    response = httpx.get(url + "/ui/")
    assert response.headers["x-content-type-options"] == "nosniff"
    policy = response.headers["content-security-policy"]
    assert "default-src 'none'" in policy and "script-src" not in policy
    assert "frame-ancestors 'none'" in policy
    (style,) = re.findall(r"<style>(.*?)</style>", response.text, re.S)
    digest = base64.b64encode(hashlib.sha256(style.encode()).digest()).decode()
    assert f"style-src 'sha256-{digest}'" in policy  # the page's own style still applies


def test_ui_shows_no_absolute_server_path(served) -> None:
    data, url = served
    text = httpx.get(url + "/ui/").text
    assert str(data) not in text
    assert str(data.parent) not in text
    assert "DATA/packages/nosig-1.0.0.zip" in text  # the refused package, named inside DATA


def test_ui_counts_nothing_that_leads_out_of_data(served) -> None:
    _, url = served
    text = httpx.get(url + "/ui/").text
    key = re.search(r'<tr class="key" data-file="stray.asc">.*?</tr>', text, re.S)
    assert key is not None and "leads outside DATA/keys" in key.group(0)
    cell = re.search(
        r'data-version="9.1.0" data-product="elastic-agent" data-platform="linux-x86_64"[^>]*>'
        r"([^<]*)<",
        text,
    )
    assert cell is not None and cell.group(1) == "missing"  # /downloads/ does not serve it


def test_ui_is_rendered_once_per_index_or_load(served) -> None:
    data, url = served
    first = httpx.get(url + "/ui/").text
    time.sleep(1.1)  # the page shows when it was rendered, to the second
    assert httpx.get(url + "/ui/").text == first
    (data / "state" / "generation").write_text("2 a load\n")  # what a bundle load does last
    deadline = time.monotonic() + 30
    while httpx.get(url + "/ui/").text == first:
        assert time.monotonic() < deadline, "the page was not rendered again after a load"
        time.sleep(0.2)


@pytest.mark.parametrize("name", ["img/icon.svg", "docs/page.html"])
def test_svg_and_html_package_files_are_sandboxed(served, name: str) -> None:
    _, url = served
    response = httpx.get(f"{url}/package/badsig/1.0.0/{name}")
    assert response.status_code == 200
    policy = response.headers["content-security-policy"]
    assert policy.startswith("sandbox") and "default-src 'none'" in policy


def test_other_package_files_keep_go_s_headers(served) -> None:
    _, url = served
    response = httpx.get(f"{url}/package/badsig/1.0.0/img/logo.png")
    assert response.status_code == 200
    assert "content-security-policy" not in response.headers
