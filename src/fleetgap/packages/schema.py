"""The registry's JSON objects as ordered field tables, and decoding manifests into them.

spec: epr-api §8. Field order is the order of the Go structs; `omit` says when a field is
left out of the JSON (Go's `omitempty` on a value, on a pointer, or `omitzero`). Decoding
keeps only known fields (unknown manifest keys are dropped) and converts scalars the way
go-ucfg does. A manifest value of the wrong shape raises `SchemaError`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fleetgap.packages.goscalars import go_string

ALWAYS = "always"  # no omitempty: always emitted, zero value when unset
EMPTY = "empty"  # omitempty on a value or slice: left out when "", false, 0, [] or {}
ABSENT = "absent"  # omitempty on a pointer or interface: left out only when unset
ZERO = "zero"  # omitzero on an object: left out when unset or when it encodes to {}

STR, BOOL, STRLIST, ANY, MAP = "str", "bool", "strlist", "any", "map"


class SchemaError(ValueError):
    pass


@dataclass(frozen=True)
class Field:
    name: str
    kind: Any  # STR, BOOL, STRLIST, ANY, MAP, a Struct, or a ListOf
    omit: str = EMPTY
    config: str | None = ""  # config path; "" means same as name; None means not read

    @property
    def path(self) -> list[str] | None:
        if self.config is None:
            return None
        return (self.config or self.name).split(".")


@dataclass(frozen=True)
class Struct:
    name: str
    fields: tuple[Field, ...]


@dataclass(frozen=True)
class ListOf:
    item: Struct


def _s(name: str, *fields: Field) -> Struct:
    return Struct(name, fields)


F = Field

DEPRECATED = _s(
    "deprecated",
    F("since", STR, ALWAYS),
    F("description", STR, ALWAYS),
    F(
        "replaced_by",
        _s(
            "replaced_by",
            F("package", STR),
            F("policy_template", STR),
            F("input", STR),
            F("data_stream", STR),
            F("variable", STR),
        ),
        ABSENT,
    ),
)
IMAGE = _s(
    "image",
    F("src", STR, ALWAYS),
    F("path", STR, ALWAYS),
    F("title", STR),
    F("size", STR),
    F("type", STR),
)
VARIABLE = _s(
    "variable",
    F("name", STR, ALWAYS),
    F("type", STR, ALWAYS),
    F("title", STR),
    F("description", STR),
    F("multi", BOOL, ALWAYS),
    F("required", BOOL, ALWAYS),
    F("show_user", BOOL, ALWAYS),
    F("default", ANY, ABSENT),
    F("deprecated", DEPRECATED, ABSENT),
)
DEPLOYMENT_MODES = _s(
    "deployment_modes",
    F("default", _s("default", F("enabled", BOOL, ALWAYS)), ABSENT),
    F(
        "agentless",
        _s(
            "agentless",
            F("enabled", BOOL, ALWAYS),
            F("is_default", BOOL, ABSENT),
            F("release", STR),
        ),
        ABSENT,
    ),
)
STREAM = _s(
    "stream",
    F("input", STR),
    F("package", STR),
    F("vars", ListOf(VARIABLE)),
    F("data_stream", STR),
    F("template_path", STR),
    F("title", STR),
    F("description", STR),
    F("enabled", BOOL, ABSENT),
    F("ingestion_method", STR),
)
INPUT = _s(
    "input",
    F("type", STR),
    F("package", STR),
    F("vars", ListOf(VARIABLE)),
    F("title", STR),
    F("description", STR),
    F("streams", ListOf(STREAM)),
    F("template_path", STR),
    F("input_group", STR),
    F("deployment_modes", STRLIST),
    F("deprecated", DEPRECATED, ABSENT),
)
POLICY_TEMPLATE = _s(
    "policy_template",
    F("name", STR, ALWAYS),
    F("title", STR, ALWAYS),
    F("description", STR, ALWAYS),
    F("data_streams", STRLIST),
    F("inputs", ListOf(INPUT)),
    F("multiple", BOOL, ABSENT),
    F("icons", ListOf(IMAGE)),
    F("categories", STRLIST),
    F("screenshots", ListOf(IMAGE)),
    F("readme", STR, ABSENT),
    F("deployment_modes", DEPLOYMENT_MODES, ABSENT),
    F("type", STR),
    F("input", STR),
    F("ingestion_method", STR),
    F("template_path", STR),
    F("deprecated", DEPRECATED, ABSENT),
)
BASE_POLICY_TEMPLATE = _s(
    "base_policy_template",
    F("name", STR, ALWAYS),
    F("title", STR, ALWAYS),
    F("description", STR, ALWAYS),
    F("icons", ListOf(IMAGE)),
    F("categories", STRLIST),
    F("deployment_modes", DEPLOYMENT_MODES, ABSENT),
    F("data_streams", STRLIST),
    F("deprecated", DEPRECATED, ABSENT),
)
_NAME_ONLY = _s("named", F("name", STR, ALWAYS))
_REQUIREMENT = _s("requirement", F("package", STR, ALWAYS), F("version", STR, ALWAYS))
CONDITIONS = _s(
    "conditions",
    F("kibana", _s("kibana", F("version", STR, ALWAYS)), ABSENT),
    F(
        "elastic",
        _s("elastic", F("subscription", STR, ALWAYS), F("capabilities", STRLIST)),
        ABSENT,
    ),
    F("agent", _s("agent", F("version", STR, ALWAYS)), ABSENT),
)
_BASE_PACKAGE_FIELDS = (
    F("name", STR, ALWAYS),
    F("title", STR, ABSENT),
    F("version", STR, ALWAYS),
    F("release", STR),
    F("source", _s("source", F("license", STR)), ABSENT),
    F("description", STR, ALWAYS),
    F("type", STR, ALWAYS),
    F("download", STR, ALWAYS, None),
    F("path", STR, ALWAYS, None),
    F("icons", ListOf(IMAGE)),
    F("policy_templates_behavior", STR),
    F("policy_templates", ListOf(BASE_POLICY_TEMPLATE), EMPTY, None),
    F("conditions", CONDITIONS, ABSENT),
    F("owner", _s("owner", F("type", STR), F("github", STR)), ABSENT),
    F("categories", STRLIST),
    F("signature_path", STR),
    F(
        "discovery",
        _s("discovery", F("fields", ListOf(_NAME_ONLY)), F("datasets", ListOf(_NAME_ONLY))),
        ZERO,
    ),
    F("data_streams", ListOf(_s("base_data_stream")), EMPTY, None),  # replaced below
    F("deprecated", DEPRECATED, ABSENT),
    F(
        "requires",
        _s("requires", F("input", ListOf(_REQUIREMENT)), F("content", ListOf(_REQUIREMENT))),
        ABSENT,
    ),
    F("group", STR),
)
BASE_DATA_STREAM = _s(
    "base_data_stream",
    F("type", STR),
    F("dataset", STR, ALWAYS),
    F("title", STR, ALWAYS),
    F("deprecated", DEPRECATED, ABSENT),
)
BASE_PACKAGE = Struct(
    "base_package",
    tuple(
        F("data_streams", ListOf(BASE_DATA_STREAM), EMPTY, None) if f.name == "data_streams" else f
        for f in _BASE_PACKAGE_FIELDS
    ),
)
DATA_STREAM = _s(
    "data_stream",
    F("type", STR, ALWAYS),
    F("dataset", STR),
    F("hidden", BOOL),
    F("ilm_policy", STR),
    F("dataset_is_prefix", BOOL),
    F("title", STR, ALWAYS),
    F("release", STR),
    F("ingest_pipeline", STR),
    F("streams", ListOf(STREAM)),
    F("package", STR, EMPTY, None),
    F(
        "elasticsearch",
        _s(
            "data_stream_elasticsearch",
            F("index_template.settings", MAP),
            F("index_template.mappings", MAP),
            F("ingest_pipeline.name", STR),
            F("privileges", _s("privileges", F("indices", STRLIST)), ABSENT),
        ),
        ABSENT,
    ),
    F("agent", _s("agent", F("privileges", _s("privileges", F("root", BOOL)), ABSENT)), ABSENT),
    F("path", STR, EMPTY, None),
    F("deprecated", DEPRECATED, ABSENT),
)
PACKAGE_EXTRA = _s(
    "package",
    F("format_version", STR, ALWAYS),
    F("readme", STR, ABSENT, None),
    F("license", STR),
    F("screenshots", ListOf(IMAGE)),
    F("assets", STRLIST, EMPTY, None),
    F("policy_templates", ListOf(POLICY_TEMPLATE)),
    F("data_streams", ListOf(DATA_STREAM), EMPTY, None),
    F("vars", ListOf(VARIABLE)),
    F(
        "elasticsearch",
        _s("elasticsearch", F("privileges", _s("privileges", F("cluster", STRLIST)), ABSENT)),
        ABSENT,
    ),
    F("agent", _s("agent", F("privileges", _s("privileges", F("root", BOOL)), ABSENT)), ABSENT),
)
# The manifest is read into the union of BasePackage and Package fields.
MANIFEST = Struct(
    "manifest",
    tuple(f for f in BASE_PACKAGE.fields if f.name not in ("policy_templates",))
    + PACKAGE_EXTRA.fields,
)
# The /package/<n>/<v>/ document: BasePackage fields, then Package's own; Package's
# policy_templates and data_streams win over BasePackage's (Go: shallower field wins).
PACKAGE = Struct(
    "package",
    tuple(f for f in BASE_PACKAGE.fields if f.name not in ("policy_templates", "data_streams"))
    + PACKAGE_EXTRA.fields,
)


# --- decoding -------------------------------------------------------------------------


def decode(struct: Struct, raw: Any, where: str = "") -> dict[str, Any]:
    """Read the known fields of `struct` from an expanded manifest object."""
    if not isinstance(raw, dict):
        raise SchemaError(f"{where or struct.name}: expected an object")
    result: dict[str, Any] = {}
    for field in struct.fields:
        path = field.path
        if path is None:
            continue
        value = _lookup(raw, path)
        if value is None:
            continue
        label = f"{where}.{field.name}" if where else field.name
        result[field.name] = _convert(field.kind, value, label)
    return result


def _lookup(raw: dict[str, Any], path: list[str]) -> Any:
    value: Any = raw
    for part in path:
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


def _convert(kind: Any, value: Any, label: str) -> Any:
    if kind == STR:
        if isinstance(value, (dict, list)):
            raise SchemaError(f"{label}: expected a string")
        return go_string(value)
    if kind == BOOL:
        return _to_bool(value, label)
    if kind == STRLIST:
        items = value if isinstance(value, list) else [value]
        return [_convert(STR, item, label) for item in items if item is not None]
    if kind == ANY:
        return sort_maps(value)
    if kind == MAP:
        if not isinstance(value, dict):
            raise SchemaError(f"{label}: expected an object")
        return sort_maps(value)
    if isinstance(kind, ListOf):
        items = value if isinstance(value, list) else [value]
        return [decode(kind.item, item, f"{label}[{i}]") for i, item in enumerate(items)]
    if isinstance(kind, Struct):
        return decode(kind, value, label)
    raise AssertionError(kind)


_TRUE = {"1", "t", "T", "TRUE", "true", "True"}
_FALSE = {"0", "f", "F", "FALSE", "false", "False"}


def _to_bool(value: Any, label: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value in _TRUE | _FALSE:
        return value in _TRUE
    raise SchemaError(f"{label}: expected a boolean")


def sort_maps(value: Any) -> Any:
    """Free-form values as Go marshals them: map keys sorted bytewise."""
    if isinstance(value, dict):
        return {go_string(k): sort_maps(value[k]) for k in sorted(value, key=go_string)}
    if isinstance(value, list):
        return [sort_maps(item) for item in value]
    return value


# --- encoding -------------------------------------------------------------------------


def encode(struct: Struct, model: dict[str, Any]) -> dict[str, Any]:
    """The JSON object for `model`, fields in struct order, omitted ones left out."""
    out: dict[str, Any] = {}
    for field in struct.fields:
        value = model.get(field.name)
        kind = field.kind
        if value is not None:
            if isinstance(kind, Struct):
                value = encode(kind, value)
            elif isinstance(kind, ListOf):
                value = [encode(kind.item, item) for item in value]
        if field.omit == ALWAYS:
            out[field.name] = _zero(kind) if value is None else value
        elif field.omit == ABSENT:
            if value is not None:
                out[field.name] = value
        elif field.omit == ZERO:
            if value:
                out[field.name] = value
        elif value not in (None, "", False, 0) and value != [] and value != {}:
            out[field.name] = value
    return out


def _zero(kind: Any) -> Any:
    if kind == STR:
        return ""
    if kind == BOOL:
        return False
    if kind in (STRLIST,) or isinstance(kind, ListOf):
        return None
    return None
