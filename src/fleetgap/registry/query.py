"""/search and /categories query parameters into a `Filter` (spec: epr-api §3.4, §3.5).

Every error is the Go registry's 400 text. Only the first value of a key counts, except
`discovery`; an empty value means "not set".
"""

from __future__ import annotations

from dataclasses import replace

from fleetgap.packages.search import Discovery, Filter
from fleetgap.semver import SemverError, Version

SEARCH_ONLY = ("all", "category", "package", "type", "internal")
CATEGORIES_ONLY = ("include_policy_templates",)


class QueryError(ValueError):
    pass


def parse_bool(value: str) -> bool | None:
    """Go `strconv.ParseBool`; None when it is not a boolean."""
    if value in ("1", "t", "T", "TRUE", "true", "True"):
        return True
    if value in ("0", "f", "F", "FALSE", "false", "False"):
        return False
    return None


def search_filter(query: dict[str, list[str]], allow_unknown: bool) -> Filter:
    return _filter(query, allow_unknown, SEARCH_ONLY)


def categories_filter(query: dict[str, list[str]], allow_unknown: bool) -> tuple[Filter, bool]:
    """The filter, and whether policy templates count (`include_policy_templates`)."""
    result = _filter(query, allow_unknown, CATEGORIES_ONLY)
    value = query.get("include_policy_templates", [""])[0]
    include = False
    if value:
        parsed = parse_bool(value)
        if parsed is None:
            raise QueryError(f"invalid 'include_policy_templates' query param: '{value}'")
        include = parsed
    return result, include


def _filter(query: dict[str, list[str]], allow_unknown: bool, own: tuple[str, ...]) -> Filter:
    result = Filter()
    for key, values in query.items():
        value = values[0] if values else ""
        if key == "discovery":
            result = replace(result, discovery=result.discovery + tuple(map(_discovery, values)))
        elif key in _COMMON or key in own:
            if value and key in _SETTERS:
                result = _SETTERS[key](result, value)
        elif not allow_unknown:
            raise QueryError(f"unknown query parameter: {_go_quote(key)}")
    return result


def _version(label: str):
    def parse(value: str) -> Version:
        try:
            return Version.parse(value)
        except SemverError as exc:
            raise QueryError(f"invalid {label} version '{value}': {exc}") from None

    return parse


def _spec(key: str):
    def parse(value: str) -> Version:
        if len(value.split(".")) != 2:
            raise QueryError(
                f"invalid '{key}' version: invalid version '{value}': it should be <major.version>"
            )
        try:
            return Version.parse(value)
        except SemverError as exc:
            raise QueryError(
                f"invalid '{key}' version: invalid spec version '{value}': {exc}"
            ) from None

    return parse


def _boolean(key: str):
    def parse(value: str) -> bool:
        parsed = parse_bool(value)
        if parsed is None:
            raise QueryError(f"invalid '{key}' query param: '{value}'")
        return parsed

    return parse


def _discovery(value: str) -> Discovery:
    kind, found, args = value.partition(":")
    if not found:
        raise QueryError(
            f"invalid 'discovery' query param: '{value}': could not parse filter {_go_quote(value)}"
        )
    if kind == "fields":
        return Discovery(fields=tuple(args.split(",")))
    if kind == "datasets":
        return Discovery(datasets=tuple(args.split(",")))
    raise QueryError(
        f"invalid 'discovery' query param: '{value}': unknown discovery filter {_go_quote(kind)}"
    )


_kibana, _agent = _version("Kibana"), _version("agent")
_spec_min, _spec_max = _spec("spec.min"), _spec("spec.max")
_all, _pre, _exp = _boolean("all"), _boolean("prerelease"), _boolean("experimental")

_SETTERS = {
    "kibana.version": lambda f, v: replace(f, kibana_version=_kibana(v)),
    "agent.version": lambda f, v: replace(f, agent_version=_agent(v)),
    "category": lambda f, v: replace(f, category=v),
    "package": lambda f, v: replace(f, package_name=v),
    "type": lambda f, v: replace(f, package_type=v),
    "capabilities": lambda f, v: replace(f, capabilities=tuple(v.split(","))),
    "spec.min": lambda f, v: replace(f, spec_min=_spec_min(v)),
    "spec.max": lambda f, v: replace(f, spec_max=_spec_max(v)),
    "all": lambda f, v: replace(f, all_versions=_all(v)),
    "prerelease": lambda f, v: replace(f, prerelease=_pre(v)),
    "experimental": lambda f, v: replace(f, experimental=_exp(v)),
}
_COMMON = (
    "kibana.version",
    "agent.version",
    "capabilities",
    "spec.min",
    "spec.max",
    "prerelease",
    "experimental",
)


def _go_quote(text: str) -> str:
    """Go `%q` for the printable ASCII the registry's messages show."""
    escaped = text.replace("\\", "\\\\").replace('"', '\\"')
    out = []
    for ch in escaped:
        code = ord(ch)
        if 0xDC80 <= code <= 0xDCFF:  # a byte that was not UTF-8 (surrogate escape)
            out.append(f"\\x{code - 0xDC00:02x}")
        elif code < 0x20 or code == 0x7F:
            out.append({"\n": "\\n", "\t": "\\t", "\r": "\\r"}.get(ch, f"\\x{code:02x}"))
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'
