"""Selection and category counting rules that the golden files do not pin alone."""

from __future__ import annotations

from pathlib import Path

from fleetgap.packages.categories import categories_document, count_categories
from fleetgap.packages.index import LoadOptions, load_index
from fleetgap.packages.search import Filter, select
from fleetgap.semver import Version

from builders import package_files, write_dir_package


def index_of(tmp_path: Path, packages: dict[tuple[str, str], dict[str, str | None]]):
    for (name, version), fields in packages.items():
        write_dir_package(tmp_path, name, version, package_files(name, version, fields))
    return load_index(LoadOptions((tmp_path,), require_signatures=False))


def names(matches) -> list[tuple[str, str]]:
    return [(m.name, m.version) for m in matches]


def test_latest_version_per_name_and_prerelease_hidden(tmp_path: Path) -> None:
    index = index_of(
        tmp_path,
        {("a", "1.0.0"): {}, ("a", "1.1.0"): {}, ("a", "2.0.0-rc1"): {}, ("b", "0.1.0"): {}},
    )
    assert names(select(index.indexers, Filter())) == [("a", "1.1.0"), ("b", "0.1.0")]
    assert names(select(index.indexers, Filter(prerelease=True))) == [
        ("a", "2.0.0-rc1"),
        ("b", "0.1.0"),
    ]


def test_legacy_experimental_prefers_ga_over_newer_prerelease(tmp_path: Path) -> None:
    index = index_of(tmp_path, {("a", "1.0.0"): {}, ("a", "2.0.0-rc2"): {}, ("e", "1.0.0-rc2"): {}})
    assert names(select(index.indexers, Filter(experimental=True))) == [
        ("a", "1.0.0"),
        ("e", "1.0.0-rc2"),
    ]


def test_prerelease_kibana_fails_constraints_without_prerelease(tmp_path: Path) -> None:
    index = index_of(tmp_path, {("a", "1.0.0"): {}})
    snapshot = Filter(kibana_version=Version.parse("9.1.0-SNAPSHOT"))
    assert select(index.indexers, snapshot) == []
    assert names(select(index.indexers, Filter(kibana_version=Version.parse("9.1.0")))) == [
        ("a", "1.0.0")
    ]


def test_capabilities_must_all_be_offered(tmp_path: Path) -> None:
    caps = {"conditions.elastic.capabilities": "[observability, security]"}
    index = index_of(tmp_path, {("a", "1.0.0"): caps, ("b", "1.0.0"): {}})
    assert names(select(index.indexers, Filter(capabilities=("observability",)))) == [
        ("b", "1.0.0")
    ]
    both = Filter(capabilities=("observability", "security"))
    assert names(select(index.indexers, both)) == [("a", "1.0.0"), ("b", "1.0.0")]


def test_category_filter_runs_after_latest_selection(tmp_path: Path) -> None:
    index = index_of(
        tmp_path,
        {("a", "1.0.0"): {"categories": "[security]"}, ("a", "2.0.0"): {"categories": "[web]"}},
    )
    assert select(index.indexers, Filter(category="security")) == []
    assert names(select(index.indexers, Filter(category="observability"))) == [("a", "2.0.0")]


def test_policy_template_categories_count_again_per_template(tmp_path: Path) -> None:
    """The Go unit test's worked example: observability +2, security +2, network +2."""
    template = (
        "\npolicy_templates:\n  - name: t\n    title: T\n    description: T.\n"
        "    categories: [network]"
    )
    index = index_of(
        tmp_path,
        {("foo", "1.0.0"): {"categories": "[observability, security]" + template}},
    )
    matches = select(index.indexers, Filter())
    plain = {c["id"]: c["count"] for c in categories_document(count_categories(matches, False))}
    assert plain == {"observability": 1, "security": 1}
    counted = count_categories(matches, True)
    assert {c["id"]: c["count"] for c in categories_document(counted)} == {
        "network": 2,
        "observability": 2,
        "security": 2,
    }
