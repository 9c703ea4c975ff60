"""YAML as the Go registry reads it: yaml.v2 (YAML 1.1) under go-ucfg with dotted-key expansion.

spec: epr-api §5.3. Timestamps stay strings, `y`/`n`/`on`/`off` are booleans, and a key
`a.b: x` means `a: {b: x}` at every level, merged with other spellings of the same object.
"""

from __future__ import annotations

import re
from typing import Any

import yaml

from fleetgap.packages.fs import PackageFS
from fleetgap.packages.goscalars import go_string
from fleetgap.packages.model import PackageError

_Base = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

_BOOL_VALUES = {
    "y": True, "yes": True, "true": True, "on": True,
    "n": False, "no": False, "false": False, "off": False,
}  # fmt: skip
_BOOL_PATTERN = re.compile(
    r"^(?:y|Y|yes|Yes|YES|n|N|no|No|NO|true|True|TRUE|false|False|FALSE|on|On|ON|off|Off|OFF)$"
)


class ManifestLoader(_Base):  # type: ignore[misc,valid-type]
    """Safe loader with yaml.v2's booleans and without timestamp conversion."""


def _without(resolvers: dict, tags: set[str]) -> dict:
    return {
        first: [(tag, regexp) for tag, regexp in entries if tag not in tags]
        for first, entries in resolvers.items()
    }


ManifestLoader.yaml_implicit_resolvers = _without(
    _Base.yaml_implicit_resolvers,
    {"tag:yaml.org,2002:timestamp", "tag:yaml.org,2002:bool"},
)
ManifestLoader.add_implicit_resolver("tag:yaml.org,2002:bool", _BOOL_PATTERN, list("yYnNtTfFoO"))


def _construct_bool(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> bool:
    return _BOOL_VALUES[loader.construct_scalar(node).lower()]


ManifestLoader.add_constructor("tag:yaml.org,2002:bool", _construct_bool)
ManifestLoader.add_constructor("tag:yaml.org,2002:timestamp", ManifestLoader.construct_yaml_str)


def load_yaml(data: bytes | str) -> Any:
    """Parse one YAML document; raises yaml.YAMLError on bad input."""
    return yaml.load(data, Loader=ManifestLoader)  # noqa: S506 - a SafeLoader subclass


def expand_dotted(value: Any) -> Any:
    """Expand `a.b: x` keys into nested objects everywhere, merging objects reached twice."""
    if isinstance(value, dict):
        result: dict[str, Any] = {}
        for key, item in value.items():
            parts = go_string(key).split(".")
            _merge_into(result, parts, expand_dotted(item))
        return result
    if isinstance(value, list):
        return [expand_dotted(item) for item in value]
    return value


def _merge_into(target: dict[str, Any], parts: list[str], value: Any) -> None:
    for part in parts[:-1]:
        child = target.get(part)
        if not isinstance(child, dict):
            child = {}
            target[part] = child
        target = child
    last = parts[-1]
    existing = target.get(last)
    if isinstance(existing, dict) and isinstance(value, dict):
        for key, item in value.items():
            _merge_into(existing, [key], item)
    else:
        target[last] = value


def read_yaml_object(fs: PackageFS, name: str) -> dict[str, Any]:
    """An expanded YAML object from a package file; PackageError when missing or not an object."""
    try:
        raw = fs.read(name)
    except FileNotFoundError:
        raise PackageError(f"{name} not found") from None
    parsed = expand_dotted(load_yaml(raw))
    if parsed is None:
        return {}
    if not isinstance(parsed, dict):
        raise PackageError(f"{name}: expected a YAML object at the top level")
    return parsed
