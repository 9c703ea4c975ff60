"""Loading package paths: the Go registry's order rules, and refusing broken packages alone."""

from __future__ import annotations

import json
import logging
import stat
import zipfile
from pathlib import Path

import pytest

from fleetgap.packages.index import LoadOptions, load_index

from builders import package_files, write_dir_package, write_zip_package

REGISTRY = Path("package-registry")


def load(*paths: Path, **options):
    return load_index(LoadOptions(tuple(paths), require_signatures=False, **options))


def test_directory_and_zip_packages_are_indexed(tmp_path: Path) -> None:
    write_dir_package(tmp_path, "alpha", "1.0.0")
    write_zip_package(tmp_path / "zips", "beta", "2.0.0")
    index = load(tmp_path)
    assert sorted(index.by_key) == [("alpha", "1.0.0"), ("beta", "2.0.0")]
    beta = index.get("beta", "2.0.0")
    assert beta.is_zip
    document = json.loads(beta.index_json)
    assert document["conditions"] == {"kibana": {"version": "^8.13.0 || ^9.0.0"}}
    assert document["owner"] == {"type": "elastic", "github": "fleetgap/tests"}
    assert document["data_streams"][0]["dataset"] == "beta.logs"


def test_zip_beats_directory_for_the_same_version(tmp_path: Path) -> None:
    write_dir_package(tmp_path, "alpha", "1.0.0")
    files = package_files("alpha", "1.0.0", {"title": "From the zip"})
    write_zip_package(tmp_path, "alpha", "1.0.0", files)
    package = load(tmp_path).get("alpha", "1.0.0")
    assert package.is_zip
    assert package.base["title"] == "From the zip"


def test_earlier_path_wins(tmp_path: Path) -> None:
    first, second = tmp_path / "first", tmp_path / "second"
    write_dir_package(first, "alpha", "1.0.0", package_files("alpha", "1.0.0", {"title": "First"}))
    write_dir_package(
        second, "alpha", "1.0.0", package_files("alpha", "1.0.0", {"title": "Second"})
    )
    assert load(first, second).get("alpha", "1.0.0").base["title"] == "First"
    assert load(second, first).get("alpha", "1.0.0").base["title"] == "Second"


def test_missing_and_empty_paths_give_an_empty_registry(tmp_path: Path, caplog) -> None:
    (tmp_path / "empty").mkdir()
    with caplog.at_level(logging.WARNING):
        index = load(tmp_path / "missing", tmp_path / "empty")
    assert len(index) == 0
    assert index.refused == ()


# case: (manifest fields to change, files to change; None removes)
BROKEN: dict[str, tuple[dict[str, str | None], dict[str, str | None]]] = {
    "bad YAML": ({}, {"manifest.yml": "name: [unclosed\n"}),
    "no title": ({"title": None}, {}),
    "no README": ({}, {"docs/README.md": None}),
    "version differs from its folder": ({"version": "9.9.9"}, {}),
    "invalid release": ({"release": "alpha"}, {}),
    "bad Kibana constraint": ({"conditions.kibana.version": '">>8"'}, {}),
    "data stream without required fields": (
        {},
        {"data_stream/logs/fields/base-fields.yml": "- name: message\n  type: text\n"},
    ),
    "unused pipelines": ({}, {"data_stream/logs/elasticsearch/ingest_pipeline/x.json": "{}"}),
    "dash in a folder name": ({}, {"kibana/my-dashboards/x.json": "{}"}),
    "icon missing": ({"icons": "[{src: /img/nope.svg}]"}, {}),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_broken_package_is_refused_alone(tmp_path: Path, caplog, case: str) -> None:
    write_dir_package(tmp_path, "good", "1.0.0")
    fields, changes = BROKEN[case]
    files = package_files("bad", "1.0.0", fields)
    for relative, text in changes.items():
        if text is None:
            del files[relative]
        else:
            files[relative] = text
    write_dir_package(tmp_path, "bad", "1.0.0", files)
    with caplog.at_level(logging.WARNING, logger="fleetgap.packages"):
        index = load(tmp_path)
    assert list(index.by_key) == [("good", "1.0.0")]
    assert len(index.refused) == 1
    refusal = [r for r in caplog.records if "refused" in r.getMessage()]
    assert len(refusal) == 1
    line = refusal[0].getMessage()
    assert "bad/1.0.0" in line and "\n" not in line


def _zip_with(path: Path, entries: list[zipfile.ZipInfo | tuple[str, bytes]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, text in package_files("evil", "1.0.0").items():
            archive.writestr(f"evil-1.0.0/{name}", text)
        for entry in entries:
            if isinstance(entry, tuple):
                archive.writestr(entry[0], entry[1])
            else:
                archive.writestr(entry, b"/etc/passwd")


def _symlink_entry(name: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name)
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    return info


@pytest.mark.parametrize(
    ("case", "entries", "reason"),
    [
        ("dot-dot", [("evil-1.0.0/../../escape.txt", b"x")], "escapes the package root"),
        ("absolute", [("/etc/evil.txt", b"x")], "escapes the package root"),
        ("symlink", [_symlink_entry("evil-1.0.0/docs/link.md")], "symbolic link"),
        ("bomb", [("evil-1.0.0/kibana/big.json", b"0" * (40 * 1024 * 1024))], "compression ratio"),
    ],
)
def test_hostile_zip_is_refused(tmp_path: Path, caplog, case, entries, reason) -> None:
    write_dir_package(tmp_path, "good", "1.0.0")
    _zip_with(tmp_path / "zips" / "evil-1.0.0.zip", entries)
    with caplog.at_level(logging.WARNING, logger="fleetgap.packages"):
        index = load(tmp_path)
    assert list(index.by_key) == [("good", "1.0.0")]
    assert reason in index.refused[0].reason
    assert "evil-1.0.0.zip" in caplog.text


def test_file_named_zip_that_is_not_a_zip_is_refused(tmp_path: Path) -> None:
    (tmp_path / "junk-1.0.0.zip").write_bytes(b"not a zip")
    index = load(tmp_path)
    assert len(index) == 0
    assert "not a valid zip" in index.refused[0].reason


def test_required_signature_refuses_unsigned_package(tmp_path: Path) -> None:
    write_zip_package(tmp_path, "alpha", "1.0.0")
    signed = write_zip_package(tmp_path, "beta", "1.0.0")
    Path(str(signed) + ".sig").write_text("signature")
    index = load_index(LoadOptions((tmp_path,), require_signatures=True))
    assert list(index.by_key) == [("beta", "1.0.0")]
    assert "missing a required signature file" in index.refused[0].reason
    assert index.get("beta", "1.0.0").base["signature_path"] == "/epr/beta/beta-1.0.0.zip.sig"


def test_yaml_is_read_as_go_reads_it(tmp_path: Path) -> None:
    files = package_files("alpha", "1.0.0")
    files["manifest.yml"] += (
        "policy_templates:\n"
        "  - name: logs\n    title: Logs\n    description: Logs.\n    multiple: no\n"
        "vars:\n  - name: since\n    type: text\n    default: 2024-01-01\n"
        "  - name: ratio\n    type: text\n    default: 1.0\n"
    )
    write_dir_package(tmp_path, "alpha", "1.0.0", files)
    document = json.loads(load(tmp_path).get("alpha", "1.0.0").index_json)
    assert document["policy_templates"][0]["multiple"] is False
    assert document["vars"][0]["default"] == "2024-01-01"  # timestamps stay strings
    assert document["vars"][1]["default"] == 1  # Go prints 1.0 as 1


def test_corpus_directory_packages_match_the_go_marshaler(compat: Path) -> None:
    """marshaler/packages.json is the Go registry's full JSON of every directory package."""
    testdata = compat / REGISTRY / "testdata"
    index = load(testdata / "second_package_path", testdata / "package")
    expected = json.loads(
        (compat / REGISTRY / "packages/testdata/marshaler/packages.json").read_text()
    )
    ours = [json.loads(p.index_json) for p in index.dir_packages]
    assert [(p["name"], p["version"]) for p in ours] == [
        (p["name"], p["version"]) for p in expected
    ]
    for mine, theirs in zip(ours, expected, strict=True):
        assert json.dumps(mine) == json.dumps(theirs), mine["name"]
