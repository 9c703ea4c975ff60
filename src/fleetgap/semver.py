"""Semantic versions and constraints with exactly the semantics of Go's Masterminds/semver v3.5.0.

The Elastic Package Registry uses that library for package versions, for
`conditions.kibana.version` / `conditions.agent.version` and for the `kibana.version` query,
so every quirk matters (spec: epr-api §4.9, anchors-and-deps §B.4; pinned by the golden
vectors in compat/semver). The library's defaults are modelled: `CoerceNewVersion = true`,
`DetailedNewVersionErrors = true`, `IncludePrerelease = false` unless asked for.

* `Version.parse` is Go `NewVersion` (loose), `Version.parse_strict` is `StrictNewVersion`.
* Versions order, compare equal and hash by SemVer precedence; build metadata is ignored
  (Go `Compare`/`Equal`), so `Version.parse("1.0.0+a") == Version.parse("1.0.0+b")`.
  `sorted(versions)` gives Go's `semver.Collection` order.
* `Constraints.parse` is Go `NewConstraint`; each `||` group is compiled once into one key
  interval plus, for `!=`, a few exclusions, so `check` is a couple of tuple comparisons.

Errors are `SemverError`, whose text is the library's own (e.g. `invalid semantic version`).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache

__all__ = [
    "MAX_CONSTRAINT_GROUPS",
    "MAX_CONSTRAINT_LEN",
    "MAX_VERSION_LEN",
    "Constraints",
    "SemverError",
    "Version",
    "sort_key",
]

MAX_VERSION_LEN = 256  # bytes, v3.5.0 MaxVersionLen
MAX_CONSTRAINT_LEN = 512  # bytes, v3.5.0 MaxConstraintLen
MAX_CONSTRAINT_GROUPS = 32  # `||` groups, v3.5.0 MaxConstraintGroups


class SemverError(ValueError):
    """A version or constraint the library rejects; str(e) is the library's error text."""


# A version's precedence key: (major, minor, patch, 1, ()) for a release and
# (major, minor, patch, 0, identifiers) for a prerelease, so tuple order is SemVer order.
Key = tuple


@dataclass(frozen=True, slots=True, eq=False)
class Version:
    """A parsed version. Equality, hashing and ordering follow `compare` (metadata ignored).

    Build one with `parse`/`parse_strict`; direct construction does not validate (like Go `New`).
    """

    major: int
    minor: int
    patch: int
    prerelease: str = ""
    metadata: str = ""
    original: str = ""
    _key: Key = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if self.prerelease:
            key = (self.major, self.minor, self.patch, 0, _prerelease_key(self.prerelease))
        else:
            key = (self.major, self.minor, self.patch, 1, ())
        object.__setattr__(self, "_key", key)
        if not self.original:
            object.__setattr__(self, "original", str(self))

    @classmethod
    def parse(cls, s: str) -> Version:
        """Go `NewVersion`: optional `v`, 1-3 numeric parts, leading zeros coerced."""
        return _parse_loose(s)

    @classmethod
    def parse_strict(cls, s: str) -> Version:
        """Go `StrictNewVersion`: exactly `X.Y.Z[-pre][+meta]`, no `v`, no leading zeros."""
        return _parse_strict(s)

    def compare(self, other: Version) -> int:
        """-1, 0 or 1 by SemVer precedence; build metadata is ignored (Go `Compare`)."""
        a, b = self._key, other._key
        return (a > b) - (a < b)

    @property
    def is_prerelease(self) -> bool:
        return self.prerelease != ""

    def __str__(self) -> str:
        text = f"{self.major}.{self.minor}.{self.patch}"
        if self.prerelease:
            text += "-" + self.prerelease
        if self.metadata:
            text += "+" + self.metadata
        return text

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Version):
            return NotImplemented
        return self._key == other._key

    def __hash__(self) -> int:
        return hash(self._key)

    def __lt__(self, other: Version) -> bool:
        if not isinstance(other, Version):
            return NotImplemented
        return self._key < other._key

    def __le__(self, other: Version) -> bool:
        if not isinstance(other, Version):
            return NotImplemented
        return self._key <= other._key

    def __gt__(self, other: Version) -> bool:
        if not isinstance(other, Version):
            return NotImplemented
        return self._key > other._key

    def __ge__(self, other: Version) -> bool:
        if not isinstance(other, Version):
            return NotImplemented
        return self._key >= other._key


def sort_key(version: Version) -> Key:
    """The precedence key: `sorted(vs, key=sort_key)` equals `sorted(vs)`, Go's Collection order."""
    return version._key


class Constraints:
    """A parsed Go `NewConstraint`: OR groups (`||`) of AND terms (whitespace or comma)."""

    __slots__ = ("_groups", "_string", "source")

    def __init__(self, source: str, string: str, groups: tuple[_Group, ...]) -> None:
        self.source = source
        self._string = string
        self._groups = groups

    @classmethod
    def parse(cls, s: str) -> Constraints:
        """Go `NewConstraint`; raises SemverError with the library's message."""
        return _parse_constraints(s)

    def check(self, version: Version, *, include_prerelease: bool = False) -> bool:
        """Go `Check`. A prerelease version can only satisfy a group with a prerelease term,
        unless include_prerelease (Go `IncludePrerelease`) is set."""
        key = version._key
        blocked = key[3] == 0 and not include_prerelease
        for allow_pre, low, high, exclusions in self._groups:
            if blocked and not allow_pre:
                continue
            if low <= key < high and (not exclusions or all(keep(key) for keep in exclusions)):
                return True
        return False

    def __str__(self) -> str:
        return self._string

    def __repr__(self) -> str:
        return f"Constraints({self._string!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Constraints):
            return NotImplemented
        return self.source == other.source

    def __hash__(self) -> int:
        return hash(self.source)


# --- versions -------------------------------------------------------------------------------

_UINT64_MAX = 2**64 - 1
_IDENT_CHARS = frozenset("0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ-")
_DIGITS = frozenset("0123456789")

_LOOSE = re.compile(
    r"v?([0-9]+)(?:\.([0-9]+))?(?:\.([0-9]+))?"
    r"(?:-([0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*))?"
    r"(?:\+([0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*))?"
)


def _prerelease_key(prerelease: str) -> tuple:
    # Numeric identifiers (that fit uint64) sort below alphanumeric ones; alphanumerics by bytes
    # (code point order is UTF-8 byte order). A shorter list that is a prefix sorts first.
    parts = []
    for ident in prerelease.split("."):
        if ident.isdigit() and ident.isascii() and int(ident) <= _UINT64_MAX:
            parts.append((0, int(ident)))
        elif ident:
            parts.append((1, ident))
        else:
            parts.append((-1, 0))  # only from unvalidated direct construction
    return tuple(parts)


def _too_long(s: str, limit: int) -> bool:
    return len(s) > limit or (not s.isascii() and len(s.encode("utf-8", "surrogatepass")) > limit)


@lru_cache(maxsize=8192)
def _parse_loose(s: str) -> Version:
    if _too_long(s, MAX_VERSION_LEN):
        raise SemverError(f"version string is too long (max {MAX_VERSION_LEN} bytes)")
    m = _LOOSE.fullmatch(s)
    if m is None:
        raise SemverError("invalid semantic version")
    major, minor, patch, pre, meta = m.groups()
    numbers = []
    for digits in (major, minor, patch):
        if digits is None:
            numbers.append(0)
            continue
        value = int(digits)
        if value > _UINT64_MAX:
            raise SemverError(f"error parsing version segment: {_uint_range_error(digits)}")
        numbers.append(value)
    if pre is not None:
        _check_prerelease(pre)
    return Version(numbers[0], numbers[1], numbers[2], pre or "", meta or "", s)


@lru_cache(maxsize=8192)
def _parse_strict(s: str) -> Version:
    if not s:
        raise SemverError("version string empty")
    if _too_long(s, MAX_VERSION_LEN):
        raise SemverError(f"version string is too long (max {MAX_VERSION_LEN} bytes)")
    parts = s.split(".", 2)
    if len(parts) != 3:
        raise SemverError("invalid semantic version")
    # Metadata is cut off first, then the prerelease, each validated as it is cut.
    last, plus, meta = parts[2].partition("+")
    if plus:
        _check_metadata(meta)
    last, dash, pre = last.partition("-")
    if dash:
        _check_prerelease(pre)
    parts[2] = last
    for part in parts:
        if not _DIGITS.issuperset(part):
            raise SemverError("invalid characters in version")
        if len(part) > 1 and part[0] == "0":
            raise SemverError("version segment starts with 0")
    numbers = []
    for part in parts:
        if not part:
            raise SemverError('strconv.ParseUint: parsing "": invalid syntax')
        value = int(part)
        if value > _UINT64_MAX:
            raise SemverError(_uint_range_error(part))
        numbers.append(value)
    return Version(numbers[0], numbers[1], numbers[2], pre, meta, s)


def _check_prerelease(pre: str) -> None:
    for ident in pre.split("."):
        if not ident:
            raise SemverError("invalid prerelease string")
        if _DIGITS.issuperset(ident):
            if len(ident) > 1 and ident[0] == "0":
                raise SemverError("version segment starts with 0")
        elif not _IDENT_CHARS.issuperset(ident):
            raise SemverError("invalid prerelease string")


def _check_metadata(meta: str) -> None:
    for ident in meta.split("."):
        if not ident or not _IDENT_CHARS.issuperset(ident):
            raise SemverError("invalid metadata string")


def _uint_range_error(digits: str) -> str:
    return f'strconv.ParseUint: parsing "{digits}": value out of range'


# --- constraints: grammar -------------------------------------------------------------------
# The grammar is the library's; these regexes accept the same language, but use possessive
# quantifiers and atomic groups so Python's backtracking engine stays linear (the library's
# regexes are ambiguous about whitespace, harmless in Go's RE2, exponential here).

_WS = r"[\t\n\f\r ]"  # Go's \s: ASCII only, no \v
_OP = r"(?:!=|>=|=>|<=|=<|~>|>|<|=|~|\^|)"  # the empty operator means "="
_PART = r"[0-9xX*|]++"  # quirk: the library's class also admits '|' ("1.|.3" parses here)
_IDENTS = r"[0-9A-Za-z-]++(?:\.[0-9A-Za-z-]++)*+"
_CV_PLAIN = rf"v?{_PART}(?:\.{_PART})?+(?:\.{_PART})?+(?:-{_IDENTS})?+(?:\+{_IDENTS})?+"
_CV = (
    rf"(?P<cv>v?(?P<major>{_PART})(?P<minor>\.{_PART})?+(?P<patch>\.{_PART})?+"
    rf"(?P<pre>-{_IDENTS})?+(?:\+{_IDENTS})?+)"
)
_TERM_PLAIN = rf"{_OP}{_WS}*+{_CV_PLAIN}"

# A hyphen range needs whitespace on both sides of '-'.
_RANGE = re.compile(rf"{_WS}*+({_CV_PLAIN}){_WS}++-{_WS}++({_CV_PLAIN}){_WS}*+")
# An AND group: terms separated by whitespace or by one comma with optional whitespace.
_GROUP = re.compile(
    rf"{_WS}*+{_TERM_PLAIN}(?>(?:{_WS}++(?:,{_WS}*+)?+|,{_WS}*+){_TERM_PLAIN})*+{_WS}*+"
)
_TERM = re.compile(rf"(?P<op>{_OP}){_WS}*+{_CV}")

_WILD = frozenset("xX*")

# (operator, version text as written, version to compare with, first wildcard/missing part)
_Term = tuple[str, str, Version, str]
# (prereleases allowed, low key inclusive, high key exclusive, exclusions for `!=`)
_Group = tuple[bool, Key, Key, tuple[Callable[[Key], bool], ...]]

_BOTTOM: Key = ()  # below every key
_TOP: Key = (math.inf,)  # above every key


@lru_cache(maxsize=4096)
def _parse_constraints(s: str) -> Constraints:
    if _too_long(s, MAX_CONSTRAINT_LEN):
        raise SemverError(f"constraint string is too long (max {MAX_CONSTRAINT_LEN} bytes)")
    text = _rewrite_ranges(s)
    segments = text.split("||")
    if len(segments) > MAX_CONSTRAINT_GROUPS:
        raise SemverError(f"too many constraint groups (max {MAX_CONSTRAINT_GROUPS})")
    groups = []
    strings = []
    for segment in segments:
        if _GROUP.fullmatch(segment) is None:
            raise SemverError(f"improper constraint: {_go_quote(segment)}")
        terms = [_parse_term(m) for m in _TERM.finditer(segment)]
        strings.append(" ".join(op + cv for op, cv, _, _ in terms))
        groups.append(_compile_group(terms))
    return Constraints(s, " || ".join(strings), tuple(groups))


def _rewrite_ranges(s: str) -> str:
    # "A - B" becomes ">= A, <= B "; like the library, each matched text is replaced at its
    # first occurrence in the string rewritten so far.
    out = s
    for m in _RANGE.finditer(s):
        out = out.replace(m.group(0), f">= {m.group(1)}, <= {m.group(2)} ", 1)
    return out


def _parse_term(m: re.Match[str]) -> _Term:
    op, cv, major = m.group("op"), m.group("cv"), m.group("major")
    minor, patch, pre = m.group("minor") or "", m.group("patch") or "", m.group("pre") or ""
    # A missing or wildcard part makes the term "dirty" from that part on; its version is then
    # rebuilt with zeros, keeping the prerelease but dropping `v` and the build metadata.
    if major in _WILD:
        wild, text = "major", "0.0.0" + pre
    elif not minor or minor[1:] in _WILD:
        wild, text = "minor", major + ".0.0" + pre
    elif not patch or patch[1:] in _WILD:
        wild, text = "patch", major + minor + ".0" + pre
    else:
        wild, text = "", cv
    try:
        con = _parse_loose(text)
    except SemverError:
        raise SemverError("constraint parser error") from None
    return op, cv, con, wild


def _compile_group(terms: list[_Term]) -> _Group:
    low, high, exclusions = _BOTTOM, _TOP, []
    for op, _, con, wild in terms:
        if op == "!=":
            exclusions.append(_not_equal(con, wild))
            continue
        term_low, term_high = _interval(op, con, wild)
        low, high = max(low, term_low), min(high, term_high)
    allow_pre = any(con.prerelease for _, _, con, _ in terms)
    return allow_pre, low, high, tuple(exclusions)


def _interval(op: str, con: Version, wild: str) -> tuple[Key, Key]:
    """The keys a term accepts, as [low, high). Derived from the library's per-operator rules;
    bounds such as (M+1,) sit between every key of major M and every key of major M+1."""
    key, major, minor, patch = con._key, con.major, con.minor, con.patch
    after = key + (0,)  # the least bound above key: k > key  <=>  k >= key + (0,)
    if op in ("", "=") and not wild:
        return key, after
    if op in ("", "=", "~", "~>"):
        if major == minor == patch == 0 and wild not in ("minor", "patch"):
            return key, _TOP  # ~0.0.0 and ~* accept everything from 0.0.0 on
        if wild == "minor":
            return key, (major + 1,)
        return key, (major, minor + 1)
    if op == "^":
        if major > 0 or wild == "minor":
            return key, (major + 1,)
        if minor > 0 or wild == "patch":
            return key, (0, minor + 1)
        return key, (0, 0, patch + 1)  # ^0.0.3 is exactly 0.0.3; ^0.0.0 and ^* only 0.0.0
    if op == ">":
        if wild == "minor":
            return (major + 1,), _TOP  # >8 means >=9.0.0
        if wild == "patch":
            return (major, minor + 1), _TOP  # >8.1 means >=8.2.0
        return after, _TOP
    if op == ">=" or op == "=>":
        return key, _TOP
    if op == "<":
        return _BOTTOM, key
    # "<=" and "=<"
    if wild == "minor":
        return _BOTTOM, (major + 1,)  # <=8 means <9.0.0
    if wild:
        return _BOTTOM, (major, minor + 1)  # <=1.2 means <1.3.0; <=* means <0.1.0
    return _BOTTOM, after


def _not_equal(con: Version, wild: str) -> Callable[[Key], bool]:
    """`!=` as a predicate on keys (it is not an interval)."""
    key = con._key
    if wild == "minor":  # !=1.x excludes every 1.*.*
        major = con.major
        return lambda k: k[0] != major
    if wild == "patch":  # !=1.2 excludes 1.2.* whose prerelease equals the term's
        excluded = (con.major, con.minor, key[3], key[4])
        return lambda k: (k[0], k[1], k[3], k[4]) != excluded
    return lambda k: k != key


_GO_ESCAPES = {"\a": r"\a", "\b": r"\b", "\f": r"\f", "\n": r"\n", "\r": r"\r", "\t": r"\t"}
_GO_ESCAPES["\v"] = r"\v"


def _go_quote(s: str) -> str:
    """Go's %q (strconv.Quote), used in the library's error messages."""
    out = ['"']
    for ch in s:
        code = ord(ch)
        if ch in ('"', "\\"):
            out.append("\\" + ch)
        elif ch.isprintable():
            out.append(ch)
        elif ch in _GO_ESCAPES:
            out.append(_GO_ESCAPES[ch])
        elif code < 0x20 or code == 0x7F:
            out.append(f"\\x{code:02x}")
        elif 0xD800 <= code <= 0xDFFF:
            out.append("\\ufffd")
        elif code < 0x10000:
            out.append(f"\\u{code:04x}")
        else:
            out.append(f"\\U{code:08x}")
    out.append('"')
    return "".join(out)
