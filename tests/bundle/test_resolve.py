"""The Go distribution tool's example selections (lite, all, pinned) resolve against the
loopback registry to the list its rules give (spec: epr-api §12): every matrix entry × every
query, query keys over matrix keys, the union of the answers, plus pinned packages.

The expectations are worked out by hand from conftest.PACKAGES (versions, prerelease,
Kibana conditions, format_version) — see the comments beside each.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from fleetgap.bundle.resolve import resolve_packages, search_urls
from fleetgap.bundle.selection import load_selection
from fleetgap.net import Net, NetOptions

EXAMPLES = "package-registry/cmd/distribution/examples"

# lite: 7.17.x → apache 1.0.0, nginx 1.0.0; 8.15.x → apache 2.1.0, system 1.4.0;
# 8.16-8.18 (spec ≤ 3.3) → apache 2.1.0, nginx 2.0.0, system 1.4.0 (1.5.0 wants 8.19);
# 8.19.0 (≤ 3.4) → system 1.5.0; 9.0.x (2.3..3.3) → nginx 2.0.0, system 1.4.0 (apache 2.1.0
# is spec 2.0); 9.1.0 and the kibana-less entry → apache 2.2.0 (3.0.0-beta1 is a prerelease),
# nginx 2.0.0, system 1.5.0. zeta is never queried.
LITE = [
    ("apache", "1.0.0"),
    ("apache", "2.1.0"),
    ("apache", "2.2.0"),
    ("nginx", "1.0.0"),
    ("nginx", "2.0.0"),
    ("system", "1.4.0"),
    ("system", "1.5.0"),
]
# all: every version of every package, prereleases included.
ALL = [
    ("apache", "1.0.0"),
    ("apache", "2.1.0"),
    ("apache", "2.2.0"),
    ("apache", "3.0.0-beta1"),
    ("nginx", "1.0.0"),
    ("nginx", "2.0.0"),
    ("system", "1.4.0"),
    ("system", "1.5.0"),
    ("zeta", "1.0.0"),
]
# pinned: apache, all versions with spec ≥ 3.0, no prereleases → 2.2.0; plus the pin 2.1.0
# (spec 2.0, which the query alone would leave out).
PINNED = [("apache", "2.1.0"), ("apache", "2.2.0")]


def example(compat: Path, name: str, address: str, out: Path) -> Path:
    """The corpus example with its address pointed at the loopback registry."""
    document = yaml.safe_load((compat / EXAMPLES / f"{name}.yaml").read_text())
    document["address"] = address
    document.pop("actions", None)
    path = out / f"{name}.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


@pytest.mark.parametrize(("name", "expected"), [("lite", LITE), ("all", ALL), ("pinned", PINNED)])
def test_go_example_resolves_as_the_go_rules_say(compat, public, tmp_path, name, expected):
    selection = load_selection(example(compat, name, public.url, tmp_path))
    with Net(NetOptions()) as net:
        refs = resolve_packages(selection, net)
    assert [(r.name, r.version) for r in refs] == expected


def test_lite_asks_every_matrix_entry_times_every_query(compat, public, tmp_path):
    selection = load_selection(example(compat, "lite", public.url, tmp_path))
    urls = search_urls(selection)
    assert len(urls) == 32 * 16  # 32 matrix entries (7.17.26 … 9.1.0, one without) × 16 queries
    # Go's url.Values.Encode: keys sorted; matrix and query keys in one query string
    assert (
        f"{public.url}/search?kibana.version=9.1.0&package=nginx&spec.max=3.4&spec.min=2.3" in urls
    )


def test_query_keys_override_matrix_keys(public, tmp_path):
    path = tmp_path / "override.yaml"
    path.write_text(
        f"address: {public.url}\n"
        "matrix:\n  - kibana.version: 7.17.0\n"
        "queries:\n  - package: nginx\n    kibana.version: 9.0.0\n"
    )
    with Net(NetOptions()) as net:
        refs = resolve_packages(load_selection(path), net)
    assert [(r.name, r.version) for r in refs] == [("nginx", "2.0.0")]  # 7.17 would be 1.0.0
