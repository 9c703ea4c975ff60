"""The catalogue names exactly the files Elastic publishes (checked against build manifests)."""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

import pytest

from fleetgap.artifacts.catalogue import load_catalogue
from fleetgap.errors import FleetgapError

MANIFESTS = ("manifest-8.14.2.json", "manifest-8.14.2-SNAPSHOT.json",
             "manifest-8.14.0+build202406201002.json")  # fmt: skip
PACKAGE_EXTENSIONS = (".tar.gz", ".zip", ".deb", ".rpm", ".msi")
ALL_TYPES = ("tar.gz", "zip", "deb", "rpm", "msi")


def published_paths(compat: Path, manifest: str) -> set[str]:
    """Every path after /downloads/ in a DRA build manifest."""
    data = json.loads(
        (compat / "elastic-agent/dev-tools/mage/manifest/testdata" / manifest).read_text()
    )
    paths = set()
    for project in data["projects"].values():
        for package in (project.get("packages") or {}).values():
            url = package.get("url", "")
            if "/downloads/" in url:
                paths.add(url.split("/downloads/", 1)[1])
    return paths


def product_files(paths: set[str], directory: str, prefix: str) -> dict[str, set[str]]:
    """version -> package files of one product (docker images and variants left out)."""
    pattern = re.compile(
        rf"^{re.escape(directory)}/{re.escape(prefix)}-(\d+\.\d+\.\d+(?:-SNAPSHOT)?(?:\+build\d+)?)-"
        r"(?:linux-|windows-|darwin-|amd64|arm64|x86_64|aarch64)"
    )
    found: dict[str, set[str]] = {}
    for path in paths:
        match = pattern.match(path)
        if match and path.endswith(PACKAGE_EXTENSIONS) and "docker" not in path:
            found.setdefault(match[1], set()).add(path)
    return found


@pytest.mark.parametrize("manifest", MANIFESTS)
def test_catalogue_names_match_the_release_manifest(compat, manifest):
    catalogue = load_catalogue()
    paths = published_paths(compat, manifest)
    checked = Counter()
    for name, product in catalogue.products.items():
        by_version = product_files(paths, product.directory, product.prefix)
        if name == "elastic-agent-fips":
            assert by_version == {}  # FIPS builds started after 8.14
            continue
        # The independent agent release re-publishes only the agent's own packages; its
        # Windows installer stays at the stack version: that one must be a subset.
        main = max(by_version, key=lambda v: len(by_version[v]))
        for version, published in by_version.items():
            types = ALL_TYPES[:-1] if "+build" in version else ALL_TYPES  # no msi of its own
            ours = {a.path for a in catalogue.select(version, [name], (), types)}
            if version == main:
                assert ours == published, (name, sorted(ours ^ published))
            else:
                assert published <= ours, (name, sorted(published - ours))
            checked[name] += len(published)
    assert len(checked) == 14  # every product of the air-gap guide was compared


def test_default_selection_leaves_out_windows_installers():
    catalogue = load_catalogue()
    kinds = {a.package_type for a in catalogue.select("9.1.0")}
    assert kinds == {"tar.gz", "zip", "deb", "rpm"}
    msi = catalogue.select("9.1.0", ["elastic-agent"], package_types=["msi"])
    assert [a.path for a in msi] == ["beats/elastic-agent/elastic-agent-9.1.0-windows-x86_64.msi"]


def test_platforms_that_exist_only_in_some_releases():
    catalogue = load_catalogue()

    def names(version):
        return {a.name for a in catalogue.select(version, ["elastic-agent", "elastic-agent-fips"])}

    assert "elastic-agent-9.0.0-windows-arm64.zip" in names("9.0.0")
    assert not any("windows-arm64" in n for n in names("8.19.3"))
    assert "elastic-agent-fips-8.19.0-linux-arm64.tar.gz" in names("8.19.0")
    assert not any("fips" in n for n in names("8.18.9"))


def test_build_metadata_and_snapshot_stay_in_names():
    catalogue = load_catalogue()
    (one,) = catalogue.select("8.14.1+build202406201002", ["elastic-agent"], ["linux-x86_64"],
                              ["tar.gz"])  # fmt: skip
    assert (
        one.path == "beats/elastic-agent/elastic-agent-8.14.1+build202406201002-linux-x86_64.tar.gz"
    )
    assert one.sidecars == (one.path + ".sha512", one.path + ".asc")


def test_user_yaml_adds_and_overrides_products(tmp_path):
    extra = tmp_path / "mine.yml"
    extra.write_text(
        "products:\n"
        "  cloud-defend:\n    directory: cloud-defend\n"
        "    platforms:\n      linux-x86_64: [tar.gz]\n      linux-arm64: [tar.gz]\n"
        "  cloudbeat:\n    directory: cloudbeat\n    platforms:\n      linux-x86_64: [tar.gz]\n"
    )
    catalogue = load_catalogue([extra])
    assert [a.path for a in catalogue.select("9.1.0", ["cloud-defend"])] == [
        "cloud-defend/cloud-defend-9.1.0-linux-x86_64.tar.gz",
        "cloud-defend/cloud-defend-9.1.0-linux-arm64.tar.gz",
    ]
    assert len(catalogue.select("9.1.0", ["cloudbeat"])) == 1


@pytest.mark.parametrize(
    "text, message",
    [
        ("products: [1, 2]", "'products' must be a mapping"),
        ("products:\n  x:\n    directory: ../etc\n    platforms: {linux-x86_64: [tar.gz]}\n",
         "'directory' must be a relative path"),
        ("products:\n  x:\n    directory: x\n    platforms: {plan9-mips: [tar.gz]}\n",
         "unknown platform plan9-mips"),
        ("products:\n  x:\n    directory: x\n    platforms: {windows-x86_64: [deb]}\n",
         "has no package type deb"),
        ("products: {x: {directory: x, platforms: {linux-x86_64: {types: [tar.gz], since: 9}}}}",
         "since/until must be M.m.p"),
        ("products: [unclosed", "cannot read catalogue"),
    ],
)  # fmt: skip
def test_bad_user_yaml_is_one_clear_error(tmp_path, text, message):
    extra = tmp_path / "bad.yml"
    extra.write_text(text)
    with pytest.raises(FleetgapError, match=re.escape(message)):
        load_catalogue([extra])


@pytest.mark.parametrize("version", ["9.1", "v9.1.0", "9.1.0/../../x", "9.1.0 -linux", ""])
def test_bad_versions_are_refused(version):
    with pytest.raises(FleetgapError, match="not a version"):
        load_catalogue().select(version)


def test_unknown_selection_names_are_refused():
    catalogue = load_catalogue()
    with pytest.raises(FleetgapError, match="unknown platform solaris"):
        catalogue.select("9.1.0", platforms=["solaris"])
    with pytest.raises(FleetgapError, match="unknown package type dmg"):
        catalogue.select("9.1.0", package_types=["dmg"])
    with pytest.raises(FleetgapError, match="matches no published file"):
        catalogue.select("9.1.0", ["cloudbeat"], ["windows-x86_64"])
