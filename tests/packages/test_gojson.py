"""gojson: byte-identical to Go's json.Encoder with SetIndent("", "  ") and
SetEscapeHTML(false) (spec: epr-api §9)."""

from __future__ import annotations

import json
import math
import random
import struct
from pathlib import Path

import pytest

from fleetgap.packages.gojson import SortedMap, dumps, format_float, sorted_map


def _goldens(compat: Path) -> list[Path]:
    found = sorted((compat / "package-registry/testdata/generated").glob("*.json"))
    # one ".json" golden is a plain-text 404 body
    return [path for path in found if path.read_bytes().lstrip()[:1] in (b"{", b"[")]


def test_every_generated_json_golden_is_reproduced_byte_for_byte(compat: Path) -> None:
    goldens = _goldens(compat)
    assert len(goldens) > 40
    for golden in goldens:
        raw = golden.read_bytes()
        # json.loads keeps the key order of the file, which is Go struct order.
        assert dumps(json.loads(raw)).strip() == raw.strip(), golden.name


def test_marshal_indent_with_prefix_and_html_escaping_matches_the_marshaler_golden(
    compat: Path,
) -> None:
    # packages.json was written by json.MarshalIndent(v, " ", " "), which escapes <, >, &.
    raw = (compat / "package-registry/packages/testdata/marshaler/packages.json").read_bytes()
    assert b"\\u003c" in raw
    out = dumps(json.loads(raw), prefix=" ", indent=" ", escape_html=True)
    assert out.strip() == raw.strip()


def test_layout_is_two_space_indent_with_trailing_newline() -> None:
    assert (
        dumps({"a": 1, "b": [True, None]})
        == b'{\n  "a": 1,\n  "b": [\n    true,\n    null\n  ]\n}\n'
    )


def test_empty_containers_are_written_inline() -> None:
    assert dumps({"l": [], "d": {}}) == b'{\n  "l": [],\n  "d": {}\n}\n'
    assert dumps([]) == b"[]\n"
    assert dumps({}) == b"{}\n"


def test_insertion_order_is_kept_for_model_dicts() -> None:
    assert dumps({"name": "x", "aardvark": 1}) == b'{\n  "name": "x",\n  "aardvark": 1\n}\n'


def test_sorted_map_sorts_its_keys_and_every_map_below_it_bytewise() -> None:
    free_form = sorted_map({"b": 1, "a": {"z": 1, "y": [{"d": 1, "c": 2}]}, "B": 0, "é": 3})
    assert isinstance(free_form, SortedMap)
    out = json.loads(dumps({"z": free_form, "a": 1}), object_pairs_hook=list)
    assert [key for key, _ in out] == ["z", "a"]  # the model dict keeps its order
    inner = out[0][1]
    assert [key for key, _ in inner] == ["B", "a", "b", "é"]  # byte order: upper case first
    assert [key for key, _ in inner[1][1]] == ["y", "z"]
    assert [key for key, _ in inner[1][1][0][1][0]] == ["c", "d"]


def test_sort_keys_sorts_everything() -> None:
    assert dumps({"b": 1, "a": 2}, sort_keys=True) == b'{\n  "a": 2,\n  "b": 1\n}\n'


def test_html_characters_are_not_escaped_and_non_ascii_is_raw() -> None:
    assert dumps("<a href='x'>&</a> élan 日本") == "\"<a href='x'>&</a> élan 日本\"\n".encode()


def test_line_and_paragraph_separators_are_always_escaped() -> None:
    assert dumps("a\u2028b\u2029c") == b'"a\\u2028b\\u2029c"\n'


def test_control_characters_use_go_short_escapes_then_lowercase_u00xx() -> None:
    text = '\n\r\t\b\f\x00\x01\x1f\x7f"\\'
    assert dumps(text) == b'"\\n\\r\\t\\b\\f\\u0000\\u0001\\u001f\x7f\\"\\\\"\n'


def test_invalid_utf8_becomes_the_replacement_escape() -> None:
    # A file name with an invalid byte arrives as a lone surrogate (surrogateescape).
    name = b"bad\xff.txt".decode("utf-8", "surrogateescape")
    assert dumps(name) == b'"bad\\ufffd.txt"\n'


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (1.0, "1"),
        (-0.0, "-0"),
        (0.0, "0"),
        (100.0, "100"),
        (0.1, "0.1"),
        (123.456, "123.456"),
        (1e-6, "0.000001"),
        (1.25e-5, "0.0000125"),
        (1e16, "10000000000000000"),
        (1.2345678901234567e20, "123456789012345670000"),
        (1e20, "100000000000000000000"),
        (1e21, "1e+21"),
        (1.5e300, "1.5e+300"),
        (1e-7, "1e-7"),  # Go trims e-07 to e-7
        (2.5e-10, "2.5e-10"),
        (-1e-300, "-1e-300"),
        (5e-324, "5e-324"),
        (1.7976931348623157e308, "1.7976931348623157e+308"),
    ],
)
def test_floats_are_written_like_go(value: float, text: str) -> None:
    assert format_float(value) == text
    assert dumps([value]) == f"[\n  {text}\n]\n".encode()


def test_float_text_round_trips_and_uses_the_exponent_only_outside_go_range() -> None:
    rng = random.Random(20261128)
    for _ in range(20000):
        (value,) = struct.unpack("<d", rng.getrandbits(64).to_bytes(8, "little"))
        if math.isnan(value) or math.isinf(value):
            continue
        text = format_float(value)
        assert float(text) == value
        assert ("e" in text) == (value != 0 and not 1e-6 <= abs(value) < 1e21), text
        assert not text.endswith(".0")


def test_ints_bools_and_null() -> None:
    assert dumps([0, -5, 2**70, True, False, None]) == (
        b"[\n  0,\n  -5,\n  1180591620717411303424,\n  true,\n  false,\n  null\n]\n"
    )


def test_int_keys_become_strings_like_go_maps() -> None:
    assert dumps(sorted_map({10: "a", 9: "b"})) == b'{\n  "10": "a",\n  "9": "b"\n}\n'


def test_nan_and_unknown_types_are_refused() -> None:
    with pytest.raises(ValueError):
        dumps(math.nan)
    with pytest.raises(TypeError):
        dumps({1.5})
    assert dumps({1, 2}, default=sorted) == b"[\n  1,\n  2\n]\n"
