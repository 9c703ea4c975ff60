"""fleetgap.semver against the Masterminds/semver v3.5.0 golden vectors, plus its documented quirks.

The vectors (compat/semver/vectors.json) were produced by the real Go library; every version,
constraint, Check cell, Compare cell and the sort order are checked. One test item per version
and per constraint, so a failure names its input.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

import pytest

from fleetgap.semver import (
    MAX_CONSTRAINT_GROUPS,
    MAX_CONSTRAINT_LEN,
    MAX_VERSION_LEN,
    Constraints,
    SemverError,
    Version,
    sort_key,
)

from corpus import compat_root

VECTORS = Path("semver") / "vectors.json"


@cache
def _load(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def _collection_vectors() -> dict | None:
    # Parametrizing needs the vectors at collection time, before fixtures exist.
    root = compat_root()
    return _load(root / VECTORS) if root and (root / VECTORS).is_file() else None


def _case_id(index: int, text: str) -> str:
    shown = repr(text)
    return f"{index}-{shown[:40]}{'...' if len(shown) > 40 else ''}"


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    for name, section in (("version_index", "versions"), ("constraint_index", "constraints")):
        if name in metafunc.fixturenames:
            data = _collection_vectors()
            cases = data[section] if data else []
            ids = [_case_id(i, case["input"]) for i, case in enumerate(cases)]
            metafunc.parametrize(name, range(len(cases)), ids=ids)


@pytest.fixture(scope="module")
def vectors(compat: Path) -> dict:
    return _load(compat / VECTORS)


@pytest.fixture(scope="module")
def check_versions(vectors: dict) -> list[Version | None]:
    """NewVersion of every vector version input, None where the library rejects it."""
    return [
        Version.parse(case["input"]) if case["new_version"]["ok"] else None
        for case in vectors["versions"]
    ]


def _parsed(parse, text: str) -> dict:
    try:
        v = parse(text)
    except SemverError as e:
        return {"ok": False, "error": str(e)}
    return {
        "ok": True,
        "string": str(v),
        "original": v.original,
        "major": v.major,
        "minor": v.minor,
        "patch": v.patch,
        "prerelease": v.prerelease,
        "metadata": v.metadata,
    }


# --- golden vectors ---------------------------------------------------------------------------


def test_version_parsers_match_go_new_version_and_strict_new_version(
    vectors: dict, version_index: int
) -> None:
    case = vectors["versions"][version_index]
    assert _parsed(Version.parse, case["input"]) == case["new_version"]
    assert _parsed(Version.parse_strict, case["input"]) == case["strict_new_version"]


def test_constraint_parse_string_and_every_check_cell_match_go(
    vectors: dict, check_versions: list[Version | None], constraint_index: int
) -> None:
    case = vectors["constraints"][constraint_index]
    try:
        constraints = Constraints.parse(case["input"])
    except SemverError as e:
        assert not case["ok"], f"rejected, but Go accepts it: {e}"
        assert str(e) == case["error"]
        return
    assert case["ok"], f"accepted, but Go rejects it: {case['error']}"
    assert str(constraints) == case["string"]

    inputs = [version_case["input"] for version_case in vectors["versions"]]
    wrong = []
    for include_pre, wants in ((False, case["check"]), (True, case["check_include_prerelease"])):
        for version, want, text in zip(check_versions, wants, inputs, strict=True):
            assert (version is None) == (want is None)
            if version is not None:
                got = constraints.check(version, include_prerelease=include_pre)
                if got != want:
                    wrong.append(f"{text!r} include_prerelease={include_pre}")
    assert not wrong, f"{len(wrong)} check cells differ from Go: {wrong}"


def test_compare_and_operators_match_go_matrix(vectors: dict) -> None:
    texts = vectors["compare"]["versions"]
    versions = [Version.parse(t) for t in texts]
    wrong = []
    for a, row in zip(versions, vectors["compare"]["matrix"], strict=True):
        for b, want in zip(versions, row, strict=True):
            operators = (a < b, a <= b, a == b, a != b, a >= b, a > b)
            expected = (want < 0, want <= 0, want == 0, want != 0, want >= 0, want > 0)
            if a.compare(b) != want or operators != expected:
                wrong.append(f"{a.original!r} vs {b.original!r}: want {want}")
            if want == 0 and hash(a) != hash(b):
                wrong.append(f"hash {a.original!r} != hash {b.original!r}")
    assert not wrong, wrong


def _tie_ranks(vectors: dict) -> dict[str, int]:
    """Rank of each sort input in the expected ascending order; ties share a rank."""
    group_of = {text: i for i, group in enumerate(vectors["sort"]["tie_groups"]) for text in group}
    ranks: dict[str, int] = {}
    rank, previous_group = -1, None
    for text in vectors["sort"]["ascending"]:
        group = group_of.get(text)
        if group is None or group != previous_group:
            rank += 1
        ranks[text] = rank
        previous_group = group
    return ranks


def test_sorted_gives_go_collection_order_ascending_and_descending(vectors: dict) -> None:
    inputs = vectors["sort"]["input"]
    assert len(set(inputs)) == len(inputs)
    ranks = _tie_ranks(vectors)
    versions = [Version.parse(t) for t in inputs]

    def rank_sequence(vs: list[Version]) -> list[int]:
        return [ranks[v.original] for v in vs]

    ascending = [ranks[t] for t in vectors["sort"]["ascending"]]
    descending = [ranks[t] for t in vectors["sort"]["descending"]]
    assert ascending == sorted(ascending)
    assert rank_sequence(sorted(versions)) == ascending
    assert rank_sequence(sorted(versions, key=sort_key)) == ascending
    assert rank_sequence(sorted(versions, reverse=True)) == descending


# --- documented quirks, readable ----------------------------------------------------------------


def check(constraint: str, version: str, **kwargs: bool) -> bool:
    return Constraints.parse(constraint).check(Version.parse(version), **kwargs)


def test_comma_and_whitespace_both_mean_and() -> None:
    comma, space = Constraints.parse(">=7.14.0, <8.0.0"), Constraints.parse(">=7.14.0 <8.0.0")
    assert str(comma) == str(space) == ">=7.14.0 <8.0.0"
    for v in ("7.13.9", "7.14.0", "7.17.3", "8.0.0", "0.2.5"):
        assert comma.check(Version.parse(v)) == space.check(Version.parse(v))
    assert not comma.check(Version.parse("0.2.5"))  # npm would keep only "<8.0.0"
    assert check(">=1.2.3\t<2.0.0", "1.5.0")
    with pytest.raises(SemverError, match="improper constraint"):
        Constraints.parse(">=1.2.3,,<2.0.0")


def test_not_equal_without_prerelease_rejects_every_prerelease() -> None:
    assert check("!=8.1.0", "8.2.0")
    assert not check("!=8.1.0", "8.1.0")
    assert not check("!=8.1.0", "8.2.0-SNAPSHOT")
    assert check("!=8.1.0", "8.2.0-SNAPSHOT", include_prerelease=True)


def test_hyphen_range_needs_spaces_and_stands_alone() -> None:
    r = Constraints.parse("1.2 - 1.4.5")
    assert str(r) == ">=1.2 <=1.4.5"
    assert r.check(Version.parse("1.2.0")) and r.check(Version.parse("1.4.5"))
    assert not r.check(Version.parse("1.4.6"))
    exact = Constraints.parse("1.2.3-2.3.4")  # one version with prerelease "2.3.4"
    assert exact.check(Version.parse("1.2.3-2.3.4")) and not exact.check(Version.parse("1.2.3"))
    for bad in ("1.2.3 -2.3.4", ">1.2.3 - 2.3.4", ">=1.0.0 1.2.3 - 2.3.4"):
        with pytest.raises(SemverError):
            Constraints.parse(bad)


def test_caret_with_zero_major_and_minor() -> None:
    assert check("^0.0.1", "0.0.1") and not check("^0.0.1", "0.0.2")
    assert check("^0.0.x", "0.0.7") and not check("^0.0.x", "0.1.0")
    assert check("^0.0", "0.0.9") and not check("^0.0", "0.1.0")
    assert check("^0.2.0", "0.2.9") and not check("^0.2.0", "0.3.0")
    assert check("^0", "0.9.9") and not check("^0", "1.0.0")
    assert check("^*", "0.0.0") and not check("^*", "0.0.1")


def test_partial_and_wildcard_terms() -> None:
    assert check(">8", "9.0.0") and not check(">8", "8.9.9")
    assert check("<=1.2", "1.2.9") and not check("<=1.2", "1.3.0")
    assert check("8.x", "8.99.0") and not check("8.x", "9.0.0")
    assert check("~8.1", "8.1.7") and not check("~8.1", "8.2.0")
    assert check("~0.0.0", "5.0.0")
    assert check(">*", "0.0.1") and not check(">*", "0.0.0")
    assert not check("<*", "0.0.0")


def test_prerelease_needs_a_prerelease_term_in_the_same_group() -> None:
    assert check(">=8.12.0 <9.0.0-0", "8.13.0-SNAPSHOT")
    assert not check("^8.12.0", "8.13.0-SNAPSHOT")
    assert not check("*", "8.13.0-SNAPSHOT")
    assert check(">= 8.0.0-SNAPSHOT", "9.1.0-SNAPSHOT")  # not npm's same-tuple rule
    either = Constraints.parse("^8.0.0 || >=9.0.0-beta1")
    assert either.check(Version.parse("9.1.0-SNAPSHOT"))  # via the second group
    assert not either.check(Version.parse("8.13.0-SNAPSHOT"))  # first group has no prerelease
    assert check("^8.12.0", "8.13.0-SNAPSHOT", include_prerelease=True)
    assert check("*-0", "0.0.1-alpha")


def test_build_metadata_is_ignored_by_compare_equality_and_check() -> None:
    a, b = Version.parse("1.0.0+build.1"), Version.parse("1.0.0+build.2")
    assert a == b and hash(a) == hash(b) and a.compare(b) == 0 and len({a, b}) == 1
    assert (str(a), str(b)) == ("1.0.0+build.1", "1.0.0+build.2")
    assert check("=1.0.0+build.1", "1.0.0+build.2")


def test_loose_and_strict_parsing() -> None:
    v = Version.parse("v8.1")
    assert (str(v), v.original, v.is_prerelease) == ("8.1.0", "v8.1", False)
    assert str(Version.parse("08.1.0")) == "8.1.0"
    assert Version.parse("1.2-beta").is_prerelease
    with pytest.raises(SemverError, match="^invalid characters in version$"):
        Version.parse_strict("v1.2.3")
    with pytest.raises(SemverError, match="^version segment starts with 0$"):
        Version.parse_strict("08.1.0")
    with pytest.raises(SemverError, match="^version segment starts with 0$"):
        Version.parse("1.2.3-01")
    assert issubclass(SemverError, ValueError)
    assert Version.parse("18446744073709551615.0.0").major == 2**64 - 1
    with pytest.raises(SemverError, match="value out of range"):
        Version.parse("18446744073709551616.0.0")


def test_length_limits_count_bytes() -> None:
    longest = "1.0.0-" + "a" * (MAX_VERSION_LEN - 6)
    assert str(Version.parse(longest)) == longest
    too_long = f"version string is too long (max {MAX_VERSION_LEN} bytes)"
    for parse in (Version.parse, Version.parse_strict):
        with pytest.raises(SemverError) as e:
            parse(longest + "a")
        assert str(e.value) == too_long
    # 132 characters but 258 bytes: too long, not merely invalid
    with pytest.raises(SemverError, match="too long"):
        Version.parse("1.0.0-" + "é" * 126)

    terms = " ".join([">=1.0.0"] * 64)  # 511 bytes
    assert len(terms) < MAX_CONSTRAINT_LEN
    Constraints.parse(terms.ljust(MAX_CONSTRAINT_LEN))
    with pytest.raises(SemverError, match=r"^constraint string is too long \(max 512 bytes\)$"):
        Constraints.parse(terms.ljust(MAX_CONSTRAINT_LEN + 1))

    groups = [f"1.0.{i}" for i in range(MAX_CONSTRAINT_GROUPS)]
    Constraints.parse(" || ".join(groups))
    with pytest.raises(SemverError, match=r"^too many constraint groups \(max 32\)$"):
        Constraints.parse(" || ".join([*groups, "2.0.0"]))


def test_improper_constraint_quotes_like_go() -> None:
    for text, message in (
        ("", 'improper constraint: ""'),
        ("≥1.2.3", 'improper constraint: "≥1.2.3"'),
        ('>= "1"\t', 'improper constraint: ">= \\"1\\"\\t"'),
        ("1.|.3", "constraint parser error"),
    ):
        with pytest.raises(SemverError) as e:
            Constraints.parse(text)
        assert str(e.value) == message
