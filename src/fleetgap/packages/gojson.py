"""JSON bytes identical to Go's ``json.Encoder`` with ``SetIndent("", "  ")`` and
``SetEscapeHTML(false)`` (spec: epr-api §9).

``dumps(obj)`` keeps the insertion order of dicts: the caller builds model dicts in Go
struct-field order. Free-form Go maps (``map[string]interface{}``) are written with keys
sorted; wrap such a value with ``sorted_map()`` (it and everything below it is sorted) or
pass ``sort_keys=True`` to sort every object.
"""

from __future__ import annotations

import json.encoder
import math
import re
from collections.abc import Callable
from typing import Any

__all__ = ["SortedMap", "dumps", "format_float", "sorted_map"]


class SortedMap(dict):
    """A dict written with its keys, and the keys of every object below it, sorted bytewise."""

    __slots__ = ()


def sorted_map(obj: dict[str, Any]) -> SortedMap:
    """Mark a free-form map: Go sorts map keys (UTF-8 byte order == code point order)."""
    return obj if type(obj) is SortedMap else SortedMap(obj)


def dumps(
    obj: Any,
    *,
    sort_keys: bool = False,
    default: Callable[[Any], Any] | None = None,
    prefix: str = "",
    indent: str = "  ",
    escape_html: bool = False,
) -> bytes:
    """Encode ``obj`` as Go's indented encoder does, trailing newline included.

    Types: dict (str keys; int keys become strings like Go's map[int]), list, tuple, str,
    int, float, bool, None. ``default`` converts anything else (like ``json.dumps``).
    NaN and infinities raise ValueError (Go: UnsupportedValueError).
    ``prefix``/``indent``/``escape_html`` mirror Go's SetIndent and SetEscapeHTML; the
    defaults are the registry's (spec: epr-api §9).
    """
    parts: list[str] = []
    _make_encoder(parts, default, indent)(obj, "\n" + prefix, sort_keys)
    parts.append("\n")
    text = "".join(parts)
    if escape_html:
        text = text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    return text.encode("utf-8")


def format_float(value: float) -> str:
    """Go ``encoding/json`` float64 text: shortest round-trip digits, ``%f`` style
    for 1e-6 <= |x| < 1e21 (so 1.0 -> ``1``), else exponent (``1e+21``, ``1e-7``)."""
    if value != value or value in (math.inf, -math.inf):
        raise ValueError(f"json: unsupported value: {value!r}")
    text = repr(value)  # shortest round-trip digits, like Go's strconv with precision -1
    magnitude = abs(value)
    if magnitude != 0 and (magnitude < 1e-6 or magnitude >= 1e21):
        # repr already uses the exponent form in this range: d[.ddd]e±XX
        mantissa, _, exponent = text.partition("e")
        if mantissa.endswith(".0"):
            mantissa = mantissa[:-2]
        sign, digits = exponent[0], exponent[1:]
        if sign == "-" and len(digits) == 2 and digits[0] == "0":
            digits = digits[1:]  # Go cleans e-07 up to e-7 but keeps e+21
        return f"{mantissa}e{sign}{digits}"
    if "e" in text:
        return _expand_exponent(text)
    if text.endswith(".0"):
        return text[:-2]
    return text


# -- internals -------------------------------------------------------------------------

_encode_basestring: Callable[[str], str] = json.encoder.encode_basestring  # C accelerated
# Go escapes U+2028/U+2029 always, and writes invalid UTF-8 (a lone surrogate here) as \ufffd.
_SPECIAL = re.compile("[\u2028\u2029\ud800-\udfff]")
_SPECIAL_TEXT = {"\u2028": "\\u2028", "\u2029": "\\u2029"}


def _special(match: re.Match[str]) -> str:
    return _SPECIAL_TEXT.get(match.group(), "\\ufffd")


def _string(text: str) -> str:
    encoded = _encode_basestring(text)
    if not text.isascii():
        encoded = _SPECIAL.sub(_special, encoded)
    return encoded


def _expand_exponent(text: str) -> str:
    """Python repr ``d[.ddd]e±XX`` to plain digits: ``1.25e-05`` -> ``0.0000125``."""
    sign = ""
    if text[0] == "-":
        sign, text = "-", text[1:]
    mantissa, _, exponent = text.partition("e")
    digits = mantissa.replace(".", "").rstrip("0") or "0"
    point = int(exponent) + 1  # digits before the decimal point (repr has one before ".")
    if point <= 0:
        return f"{sign}0.{'0' * -point}{digits}"
    if point >= len(digits):
        return f"{sign}{digits}{'0' * (point - len(digits))}"
    return f"{sign}{digits[:point]}.{digits[point:]}"


def _make_encoder(
    parts: list[str], default: Callable[[Any], Any] | None, indent: str
) -> Callable[[Any, str, bool], None]:
    """A recursive writer into ``parts``; closures keep the hot path free of attribute
    lookups. ``newline`` is "\\n" + prefix + the current indent."""
    append = parts.append
    string = _string

    def scalar(obj: Any) -> str | None:
        # The text of a non-container value, or None for containers and unknown types.
        kind = type(obj)
        if kind is str:
            return string(obj)
        if obj is None:
            return "null"
        if obj is True:
            return "true"
        if obj is False:
            return "false"
        if kind is int:
            return int.__repr__(obj)
        if kind is float:
            return format_float(obj)
        return None

    def encode(obj: Any, newline: str, sort: bool) -> None:
        kind = type(obj)
        if kind is dict or kind is SortedMap:
            mapping(obj, newline, sort or kind is SortedMap)
        elif kind is list or kind is tuple:
            sequence(obj, newline, sort)
        else:
            text = scalar(obj)
            if text is None:
                other(obj, newline, sort)
            else:
                append(text)

    def other(obj: Any, newline: str, sort: bool) -> None:
        if isinstance(obj, str):
            append(string(str(obj)))
        elif isinstance(obj, dict):
            mapping(obj, newline, sort or isinstance(obj, SortedMap))
        elif isinstance(obj, list | tuple):
            sequence(obj, newline, sort)
        elif isinstance(obj, int):  # bool was handled by identity
            append(int.__repr__(int(obj)))
        elif isinstance(obj, float):
            append(format_float(float(obj)))
        elif default is not None:
            encode(default(obj), newline, sort)
        else:
            raise TypeError(f"Object of type {type(obj).__name__} is not JSON serializable")

    def mapping(obj: dict[Any, Any], newline: str, sort: bool) -> None:
        if not obj:
            append("{}")
            return
        items: Any = obj.items()
        if sort:
            items = sorted(((_key(key), value) for key, value in items), key=_first)
        inner = newline + indent
        separator = "{" + inner
        for key, value in items:
            append(separator)
            append(string(key) if type(key) is str else string(_key(key)))
            text = scalar(value)
            if text is None:
                append(": ")
                encode(value, inner, sort)
            else:
                append(": " + text)
            separator = "," + inner
        append(newline + "}")

    def sequence(obj: list[Any] | tuple[Any, ...], newline: str, sort: bool) -> None:
        if not obj:
            append("[]")
            return
        inner = newline + indent
        separator = "[" + inner
        for value in obj:
            text = scalar(value)
            if text is None:
                append(separator)
                encode(value, inner, sort)
            else:
                append(separator + text)
            separator = "," + inner
        append(newline + "]")

    return encode


def _first(item: tuple[str, Any]) -> str:
    return item[0]


def _key(key: Any) -> str:
    if type(key) is str:
        return key
    if isinstance(key, str):
        return str(key)
    if isinstance(key, int) and not isinstance(key, bool):
        return int.__repr__(int(key))
    raise TypeError(f"keys must be str or int, not {type(key).__name__}")
